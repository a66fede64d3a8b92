"""Bounds on reading a request head (the request line and the header fields), which uvicorn's
httptools protocol does not have: a head larger than ``MAX_HEAD_BYTES`` is refused with 431
(RFC 6585 §5) and the connection closed (lingering, so that the client reads the 431); a
connection whose head is not complete within ``Settings.head_timeout`` is closed. Without them
one connection may send an endless header that the parser buffers whole, or hold a worker's
connection by sending a byte now and then.

uvicorn offers neither as an option for httptools; its h11 protocol bounds the head size
(``h11_max_incomplete_event_size``) but not the time, and parses in pure Python. So this is a
subclass of uvicorn's ``HttpToolsProtocol``, relying on its private parts: ``data_received``
feeding ``self.parser`` (httptools), the parser callbacks ``on_message_begin``,
``on_headers_complete`` and ``on_message_complete``, and ``self.transport``, ``self.loop`` and
``self.server_state``. Tested with uvicorn 0.55.

Which bytes count: from the end of the previous request (or the connection's start) until the
head is complete. A pipelined request that begins in the same read as the end of the previous
one is counted from the next read on, so its head may exceed the limit by that one read. The
time runs from the connection's start, or from the first byte of a later request (between
requests, uvicorn's keep-alive timeout closes idle connections).
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol
from uvicorn.server import ServerState

from idp.settings import Settings

MAX_HEAD_BYTES = 64 * 1024
HEAD_TOO_LARGE = b"Request header fields too large"
LINGER_SECONDS = 2.0
TIMER_SLACK = 0.002  # seconds a timer may fire early (uvloop's count whole milliseconds)


class HeadLimitedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's HTTP/1.1 protocol with a size and a time bound on every request head. The time
    is the app's ``Settings.head_timeout``, read from the lifespan state uvicorn hands every
    protocol (idp's lifespan yields its settings); the default without one."""

    max_head_bytes = MAX_HEAD_BYTES

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        settings = app_state.get("settings")
        timeout = settings.head_timeout if isinstance(settings, Settings) else None
        self.head_timeout = (timeout or Settings.head_timeout).total_seconds()
        self.head_bytes: int | None = 0  # of the coming head; None while a body is read
        self.heads_read = 0
        self.head_deadline: float | None = None  # loop time the coming head must be read by
        self.head_timer: asyncio.TimerHandle | None = None
        self.refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.head_deadline = self.loop.time() + self.head_timeout
        self.head_timer = self.loop.call_at(self.head_deadline, self.check_head)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self.head_bytes
        if counted is None:
            super().data_received(data)
            return
        room = self.max_head_bytes - counted
        if len(data) <= room:
            self.head_bytes = counted + len(data)
            super().data_received(data)
            return
        if self.refused:
            return  # read and dropped until the lingering close
        # Feed what the head may still take: a head not complete by then is too large.
        self.head_bytes = self.max_head_bytes
        heads = self.heads_read
        super().data_received(data[:room])
        if self.transport.is_closing():
            return
        if self.heads_read == heads:
            self.refuse_head()
        else:
            self.data_received(data[room:])

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self.head_deadline is None:
            self.head_deadline = self.loop.time() + self.head_timeout

    def on_headers_complete(self) -> None:
        self.head_deadline = None
        self.head_bytes = None
        self.heads_read += 1
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        self.head_bytes = 0
        super().on_message_complete()

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def check_head(self) -> None:
        """One timer a connection, not one a request (each costs microseconds): it fires at the
        current head's deadline, or a head_timeout on when no head is being read (a head that
        begins meanwhile has a later deadline)."""
        now = self.loop.time()
        deadline = self.head_deadline
        if deadline is None:
            self.head_timer = self.loop.call_at(now + self.head_timeout, self.check_head)
        elif deadline > now + TIMER_SLACK:
            self.head_timer = self.loop.call_at(deadline, self.check_head)
        else:
            self.head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    def refuse_head(self) -> None:
        """431 (RFC 6585 §5), then a lingering close (RFC 9112 §9.6): the writing side is shut
        at once, and what the client goes on sending is read and dropped for LINGER_SECONDS,
        since closing with unread data would send a reset that may destroy the 431 before the
        client reads it."""
        self.stop_head_timer()
        self.head_deadline = None
        self.refused = True
        self.head_bytes = self.max_head_bytes  # anything more goes to the dropping branch
        lines = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        defaults = self.server_state.default_headers
        lines += [name + b": " + value + b"\r\n" for name, value in defaults]
        lines += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(HEAD_TOO_LARGE),
            b"connection: close\r\n\r\n",
            HEAD_TOO_LARGE,
        ]
        self.transport.write(b"".join(lines))
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.head_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
