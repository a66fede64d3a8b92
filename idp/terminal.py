"""Text safe to print on an operator's terminal (the CLI's output, the readable log lines)."""

from __future__ import annotations

import unicodedata

# Bidirectional controls (Unicode Bidi Algorithm, UAX #9 §2): they reorder what follows them,
# so a stored name could make a line read differently from what it holds (CVE-2021-42574).
_BIDI_CONTROLS = frozenset(
    chr(code) for code in (0x061C, 0x200E, 0x200F, *range(0x202A, 0x202F), *range(0x2066, 0x206A))
)


def _escape(char: str) -> str:
    if char in _BIDI_CONTROLS or unicodedata.category(char) in ("Cc", "Zl", "Zp"):
        code = ord(char)
        return f"\\x{code:02x}" if code <= 0xFF else f"\\u{code:04x}"
    return char


def printable(value: object) -> str:
    """``value`` as text safe to print on a terminal: control characters (C0, DEL, C1), line
    and paragraph separators and bidi controls become visible escapes (``\\x1b``, ``\\u202e``).

    Stored strings come from visitors too (an email typed on the login page): printed raw, an
    ESC or BEL would let them rewrite lines of the output or the terminal's title. Every
    command prints stored data through this (``print_table`` does), and so do readable log
    lines (``idp.logs.TextFormatter``); ``--json`` output is escaped by ``json.dumps``.
    """
    text = str(value)
    return text if text.isprintable() else "".join(_escape(char) for char in text)
