"""Request parameters as OAuth reads them (RFC 6749 §3.1, §3.2)."""

from __future__ import annotations

import re
from collections.abc import Iterable

from idp.oauth.errors import InvalidRequestError

# RFC 6749 §3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
_SCOPE_TOKEN = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+$")
_SURROGATE = re.compile("[\udc80-\udcff]")
# Parameters that RFC 8707 §2 lets a client repeat; every other one appears at most once.
REPEATABLE = frozenset({"resource", "audience"})


class Params:
    def __init__(self, pairs: Iterable[tuple[str, str]]) -> None:
        self._values: dict[str, list[str]] = {}
        self._malformed: set[str] = set()
        for name, value in pairs:
            if _SURROGATE.search(value):  # bytes that were not UTF-8 (decoded surrogateescape)
                self._malformed.add(name)
            if value != "":  # RFC 6749 §3.1: a parameter without a value is as if omitted
                self._values.setdefault(name, []).append(value)

    def get(self, name: str) -> str | None:
        """RFC 6749 §3.1: parameters MUST NOT be included more than once."""
        if name in self._malformed:
            raise InvalidRequestError(f"{name} is not valid UTF-8")
        values = self._values.get(name)
        if values is None:
            return None
        if len(values) > 1 and name not in REPEATABLE:
            raise InvalidRequestError(f"{name} must not be repeated")
        return values[0]

    def require(self, name: str) -> str:
        value = self.get(name)
        if value is None:
            raise InvalidRequestError(f"{name} is required")
        return value

    def all(self, name: str) -> list[str]:
        if name in self._malformed:
            raise InvalidRequestError(f"{name} is not valid UTF-8")
        return list(self._values.get(name, ()))


def parse_scope(text: str | None) -> list[str] | None:
    """A space-delimited scope list (RFC 6749 §3.3), None when absent."""
    if text is None:
        return None
    tokens = text.split(" ")
    if not all(_SCOPE_TOKEN.match(token) for token in tokens):
        raise InvalidRequestError("scope is not a space-delimited list of scope tokens")
    return list(dict.fromkeys(tokens))
