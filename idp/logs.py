"""Logs: one line per request and per event, each with the request id it belongs to; JSON for
log collectors, or readable text on a terminal (``IDP_LOG_FORMAT``, ``choose_format``).

What may be logged is decided where a line is written, never by filtering afterwards: request
lines carry the method, the path without its query string (codes, states and tokens travel in
queries), the status and the time taken; event lines carry the audit log's fields, which hold
no secret by design (``idp.audit_trail``). Nothing else logs request data. Third-party loggers
speak only of warnings and errors: their start-up lines would bury idp's own.
"""

from __future__ import annotations

import contextlib
import contextvars
import json
import logging
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from idp.terminal import printable

LogFormat = Literal["json", "text"]

REQUEST_ID: contextvars.ContextVar[str | None] = contextvars.ContextVar(
    "idp_request_id", default=None
)

request_log = logging.getLogger("idp.request")
event_log = logging.getLogger("idp.event")

# LogRecord attributes that are not extra fields.
_STANDARD = frozenset(vars(logging.LogRecord("", 0, "", 0, "", (), None))) | {"message"}
# Loggers of other projects: warnings and errors only. uvicorn's are set by uvicorn_log_config
# (uvicorn.error's level stays at info for StartupWatch, which passes only its warnings).
THIRD_PARTY = ("apscheduler", "asyncio", "pgserver")


def choose_format(setting: str, stdout_is_tty: bool) -> LogFormat:
    """``IDP_LOG_FORMAT``: ``json`` or ``text`` as asked; ``auto`` is text on a terminal, where a
    person reads, and JSON elsewhere, where a collector does."""
    if setting in ("json", "text"):
        return "json" if setting == "json" else "text"
    return "text" if stdout_is_tty else "json"


def _extras(record: logging.LogRecord) -> dict[str, Any]:
    return {key: value for key, value in vars(record).items() if key not in _STANDARD}


def _stamp(created: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(created))


class JsonFormatter(logging.Formatter):
    """``{"ts", "level", "logger", "msg", "request_id"?, ...extra fields, "exc"?}`` on one line."""

    format_name: LogFormat = "json"

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            "ts": f"{_stamp(record.created)}.{int(record.msecs):03d}Z",
            "level": record.levelname.lower(),
            "logger": record.name,
            "msg": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None) or REQUEST_ID.get()
        if request_id is not None:
            line["request_id"] = request_id
        for key, value in _extras(record).items():
            line.setdefault(key, value)
        if record.exc_info:
            line["exc"] = self.formatException(record.exc_info)
        return json.dumps(line, default=str, separators=(",", ":"))


def _text_value(value: object) -> str:
    if (
        isinstance(value, str)
        and value
        and all(char.isalnum() or char in "._:/@+-" for char in value)
    ):
        return value
    return printable(json.dumps(value, default=str, ensure_ascii=False))


class TextFormatter(logging.Formatter):
    """``12:00:01 warning idp.keys.keyring: msg key=value ...``: one readable line (a traceback
    follows, indented), every character printable."""

    format_name: LogFormat = "text"

    def format(self, record: logging.LogRecord) -> str:
        fields = _extras(record)
        if (request_id := fields.get("request_id") or REQUEST_ID.get()) is not None:
            fields["request_id"] = request_id
        fields.pop("color_message", None)  # uvicorn's copy of msg, with colour codes
        message = printable(record.getMessage())
        if fields.get("event") == record.getMessage():
            del fields["event"]  # an audit event's name is its message already
        pairs = "".join(f" {key}={_text_value(value)}" for key, value in fields.items())
        line = f"{time.strftime('%H:%M:%S', time.localtime(record.created))} "
        line += f"{record.levelname.lower()} {record.name}: {message}{pairs}"
        if record.exc_info:
            trace = self.formatException(record.exc_info).splitlines()
            line += "".join(f"\n    {printable(row)}" for row in trace)
        return line


_FORMATTERS: dict[LogFormat, type[JsonFormatter | TextFormatter]] = {
    "json": JsonFormatter,
    "text": TextFormatter,
}


class RequestLines:
    """The request log (logger ``idp.request``): one line per request, formatted directly (in
    JsonFormatter's shape, or readable with ``readable``) and written in batches, at most a
    second late (``flush``: every second, when 256 lines wait, and at shutdown).

    Going through ``logging`` would cost more than serving the JWKS does. Every field is one
    idp chose (a known route or ``unmatched``, a known method, a request id of a plain charset),
    so nothing needs escaping.
    """

    BATCH = 256

    def __init__(self) -> None:
        self._lines: list[str] = []
        self._second = -1
        self._stamp = ""
        self.readable = False
        self.write: Callable[[str], object] = _to_stderr

    @property
    def enabled(self) -> bool:
        return request_log.isEnabledFor(logging.INFO)

    def add(self, request_id: str, method: str, route: str, status: int, seconds: float) -> None:
        now = time.time()
        second = int(now)
        if self.readable:
            self._lines.append(
                f"{time.strftime('%H:%M:%S', time.localtime(now))} {method} {route} {status} "
                f"{seconds * 1000:.1f}ms request_id={request_id}\n"
            )
        else:
            if second != self._second:
                self._second = second
                self._stamp = _stamp(second)
            self._lines.append(
                f'{{"ts":"{self._stamp}.{int((now - second) * 1000):03d}Z","level":"info",'
                f'"logger":"idp.request","msg":"request","request_id":"{request_id}",'
                f'"method":"{method}","route":"{route}","status":{status},'
                f'"duration_ms":{seconds * 1000:.3f}}}\n'
            )
        if len(self._lines) >= self.BATCH:
            self.flush()

    def flush(self) -> None:
        if self._lines:
            lines, self._lines = self._lines, []
            self.write("".join(lines))


def _to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


REQUEST_LINES = RequestLines()


def _installed_format(root: logging.Logger) -> LogFormat | None:
    for handler in root.handlers:
        if isinstance(handler.formatter, JsonFormatter | TextFormatter):
            return handler.formatter.format_name
    return None


def configure(log_format: LogFormat | None = None, level: int = logging.INFO) -> LogFormat:
    """Send every logger's lines to stderr in ``log_format``, third-party loggers' warnings and
    errors only; return the format in use.

    Idempotent: once a handler with one of these formatters is installed (by an earlier call,
    or by uvicorn from ``uvicorn_log_config`` in a worker), its format is kept, and the request
    lines follow it. Without one and without ``log_format``: JSON.
    """
    root = logging.getLogger()
    chosen = _installed_format(root)
    if chosen is None:
        chosen = log_format or "json"
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_FORMATTERS[chosen]())
        root.addHandler(handler)
        root.setLevel(level)
    for name in THIRD_PARTY:
        logging.getLogger(name).setLevel(logging.WARNING)
    REQUEST_LINES.readable = chosen == "text"
    return chosen


class StartupWatch(logging.Filter):
    """On uvicorn's ``uvicorn.error`` logger: passes its warnings and errors only, and leaves a
    mark in ``directory`` when the server is listening (``listening``) and when a worker's
    application has started (``started-<pid>``). ``idp serve`` prints its banner once every
    worker has started and the socket listens, after every start-up line (uvicorn 0.55's
    messages; tests/test_quickstart.py checks they still come)."""

    def __init__(self, directory: str) -> None:
        super().__init__()
        self._directory = Path(directory)

    def filter(self, record: logging.LogRecord) -> bool:
        if record.levelno < logging.WARNING:
            message = record.getMessage()
            if message == "Application startup complete.":
                self._mark(f"started-{os.getpid()}")
            elif message.startswith("Uvicorn running on "):
                self._mark("listening")
        return record.levelno >= logging.WARNING

    def _mark(self, name: str) -> None:
        with contextlib.suppress(OSError):  # the directory is gone: idp serve is stopping
            (self._directory / name).touch()


def uvicorn_log_config(log_format: LogFormat, watch_dir: str | None = None) -> dict[str, Any]:
    """uvicorn's own lines through idp's formatter, its warnings and errors only (with
    ``watch_dir``, watched by ``StartupWatch``); its access log stays off, idp writes its own
    request line."""
    formatter = f"idp.logs.{_FORMATTERS[log_format].__name__}"
    watch = {} if watch_dir is None else {"filters": ["startup"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"idp": {"()": formatter}},
        "filters": {}
        if watch_dir is None
        else {"startup": {"()": "idp.logs.StartupWatch", "directory": watch_dir}},
        "handlers": {
            "stderr": {
                "class": "logging.StreamHandler",
                "formatter": "idp",
                "stream": "ext://sys.stderr",
            }
        },
        "root": {"handlers": ["stderr"], "level": "INFO"},
        "loggers": {
            **{name: {"level": "WARNING"} for name in (*THIRD_PARTY, "uvicorn")},
            "uvicorn.error": {"level": "INFO" if watch_dir else "WARNING", **watch},
            "uvicorn.access": {"level": "WARNING", "propagate": False},
        },
    }
