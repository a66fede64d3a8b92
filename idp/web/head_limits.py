"""Bounds on reading a request, which uvicorn's httptools protocol does not have. Without them
one connection may send an endless header, or endless trailer fields, that are buffered whole,
or hold a worker's connection for ever by sending a byte now and then.

- Head (the request line and the header fields): one larger than ``MAX_HEAD_BYTES`` is refused
  with 431 (RFC 6585 §5) and the connection closed, lingering so that the client reads the 431;
  if earlier requests on the connection are still being answered, the 431 follows their
  responses, and what the client sends meanwhile is read and dropped. A head not complete
  within ``Settings.head_timeout`` of the connection's start, or of the first byte read after
  the previous request, has its connection closed.
- Body: while one is read, a connection that brings no body data for ``head_timeout`` is
  closed; if uvicorn itself has stopped reading when that time is up (a pipelined request
  waits its turn, or the app has not taken the data read so far), or the client waits for its
  ``100 Continue``, it gets another ``head_timeout``.
  The bytes of a chunked body that are not its data (chunk sizes and extensions, trailer
  section) may not exceed ``MAX_HEAD_BYTES``, else the connection is closed. Trailer fields
  are discarded, as RFC 9112 §7.1.2 allows: idp reads none, and uvicorn would add them to the
  request's headers.
- A response sent before its request's body was read in full ends the connection (lingering,
  the rest of the body read and dropped), instead of keeping it alive while the body drains.
- Between requests, a connection on which no byte arrives is closed by uvicorn's keep-alive
  timeout, armed when a response is complete; a byte starts the head's time.

Which bytes count: from the end of the previous request (or the connection's start) until the
head is complete, then those of the body from the read after the head's on. A pipelined
request that begins in the same read as the end of the previous one is counted and timed from
the next read on (meanwhile only uvicorn's keep-alive timeout, armed once the previous response
is complete, closes an idle connection), so its head may exceed the limit by that one read.

uvicorn offers none of this as an option for httptools; its h11 protocol bounds the head size
(``h11_max_incomplete_event_size``) but not the time, and parses in pure Python. So this is a
subclass of uvicorn's ``HttpToolsProtocol``, relying on its private parts: ``data_received``
feeding ``self.parser`` (httptools), the parser callbacks ``on_header``,
``on_headers_complete``, ``on_body`` and ``on_message_complete``, the cycles' callback
``on_response_complete``, ``_unset_keepalive_if_required``, ``self.cycle``
(``response_complete``, ``waiting_for_100_continue``), ``self.flow.read_paused``, and
``self.transport``, ``self.loop`` and ``self.server_state``. Tested with uvicorn 0.55.
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
    """uvicorn's HTTP/1.1 protocol with a size and a time bound on every request head, and on
    the pauses and framing of a body. The time is the app's ``Settings.head_timeout``, read
    from the lifespan state uvicorn hands every protocol (idp's lifespan yields its settings);
    the default without one."""

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
        self.body_bytes = 0  # body data read on this connection
        self.framing_bytes = 0  # of the body being read, other than its data
        # Loop time by which the coming head must be complete, or the body being read bring
        # data; None between messages (and while nothing is read).
        self.deadline: float | None = None
        self.head_timer: asyncio.TimerHandle | None = None
        self.dropping = False  # reads are dropped until the connection is closed
        self.refusal_pending = False  # a 431 waits for earlier responses

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self.deadline = self.loop.time() + self.head_timeout
        self.head_timer = self.loop.call_at(self.deadline, self.check_deadline)

    def connection_lost(self, exc: Exception | None) -> None:
        self.stop_head_timer()
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        counted = self.head_bytes
        if counted is None:
            self.body_received(data)
            return
        if self.deadline is None:  # any byte between requests, a CRLF llhttp skips too
            self.deadline = self.loop.time() + self.head_timeout
        room = self.max_head_bytes - counted
        if len(data) <= room:
            self.head_bytes = counted + len(data)
            super().data_received(data)
            if self.head_bytes is None:
                self.body_pending()
            return
        if self.dropping:
            return
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

    def body_received(self, data: bytes) -> None:
        """A read while a body is expected: the body data in it restarts the time the next
        data must arrive within; the rest (chunk framing, trailer section) is counted."""
        heads = self.heads_read
        before = self.body_bytes
        super().data_received(data)
        if self.head_bytes is None and self.heads_read == heads:  # still the same body
            data_read = self.body_bytes - before
            self.framing_bytes += len(data) - data_read
            if self.framing_bytes > self.max_head_bytes:
                self.transport.close()
                return
            if data_read:
                self.deadline = None
        if self.head_bytes is None and not self.transport.is_closing():
            self.body_pending()

    def body_pending(self) -> None:
        """A body is expected: it must bring data within ``head_timeout``."""
        if self.deadline is None:
            self.deadline = self.loop.time() + self.head_timeout

    def on_header(self, name: bytes, value: bytes) -> None:
        if self.head_bytes is not None:  # else a trailer field, discarded (RFC 9112 §7.1.2)
            super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.deadline = None
        self.head_bytes = None
        self.framing_bytes = 0
        self.heads_read += 1
        super().on_headers_complete()

    def on_body(self, body: bytes) -> None:
        self.body_bytes += len(body)
        super().on_body(body)

    def on_message_complete(self) -> None:
        self.deadline = None
        self.head_bytes = 0
        super().on_message_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if self.transport.is_closing() or not self.cycle.response_complete:
            return  # closed, or the next pipelined request is being answered
        if self.refusal_pending:
            self.refusal_pending = False
            self.linger(self.refusal())
        elif self.head_bytes is None:
            # Answered before its body was read in full: the rest of the body is not waited
            # for, however slowly it comes (as uvicorn's h11 protocol, which closes then).
            self.linger()

    def stop_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def check_deadline(self) -> None:
        """One timer a connection, not one a request (each costs microseconds): it fires at the
        current deadline, or a head_timeout on when there is none (a deadline set meanwhile is
        later)."""
        now = self.loop.time()
        deadline = self.deadline
        if deadline is None:
            self.head_timer = self.loop.call_at(now + self.head_timeout, self.check_deadline)
        elif deadline > now + TIMER_SLACK:
            self.head_timer = self.loop.call_at(deadline, self.check_deadline)
        elif self.flow.read_paused or (
            self.head_bytes is None and self.cycle.waiting_for_100_continue
        ):
            # The client is not being read, or waits for leave to send: not its delay.
            self.deadline = now + self.head_timeout
            self.head_timer = self.loop.call_at(self.deadline, self.check_deadline)
        else:
            self.head_timer = None
            if not self.transport.is_closing():
                self.transport.close()

    def refuse_head(self) -> None:
        """431, once every earlier request on the connection is answered (written before, it
        would read as their answer); nothing more is read meanwhile."""
        self.stop_head_timer()
        self.deadline = None
        self.dropping = True
        self.head_bytes = self.max_head_bytes  # anything more goes to the dropping branch
        if self.cycle is None or self.cycle.response_complete:
            self.linger(self.refusal())
        else:
            self.refusal_pending = True

    def refusal(self) -> bytes:
        """The 431 response (RFC 6585 §5)."""
        lines = [b"HTTP/1.1 431 Request Header Fields Too Large\r\n"]
        defaults = self.server_state.default_headers
        lines += [name + b": " + value + b"\r\n" for name, value in defaults]
        lines += [
            b"content-type: text/plain; charset=utf-8\r\n",
            b"content-length: %d\r\n" % len(HEAD_TOO_LARGE),
            b"connection: close\r\n\r\n",
            HEAD_TOO_LARGE,
        ]
        return b"".join(lines)

    def linger(self, last: bytes = b"") -> None:
        """Write ``last``, then a lingering close (RFC 9112 §9.6): the writing side is shut at
        once, and what the client goes on sending is read and dropped for LINGER_SECONDS,
        since closing with unread data would send a reset that may destroy the response before
        the client reads it."""
        self.stop_head_timer()
        self._unset_keepalive_if_required()
        self.deadline = None
        self.dropping = True
        self.head_bytes = self.max_head_bytes
        if last:
            self.transport.write(last)
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.head_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)
