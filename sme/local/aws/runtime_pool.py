"""Kept-alive HTTP/1.1 connections from the twin's front to the model runtimes, on the front's event loop.

The runtimes are sme's own (``sme.local.runtime``: gunicorn, keep-alive, every reply with a
Content-Length), so the exchange is one write of the request and a reply read by its Content-Length:
a general client (aiohttp's) spent about as much CPU per request as the rest of the front together.
A reply without a Content-Length (chunked) is refused as an error, never guessed at.
"""

from __future__ import annotations

import asyncio
import socket

NO_BODY = (204, 304)


class _Connection(asyncio.Protocol):
    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.waiter: asyncio.Future | None = None
        self.closed = False
        self.received_any = False  # a connection closed before any byte of the reply may be retried

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]
        sock = transport.get_extra_info("socket")
        if sock is not None:
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        self.received_any = True
        if self.waiter is not None and not self.waiter.done():
            try:
                reply = _complete(self.buffer)
            except (OSError, ValueError, IndexError) as exc:  # not a reply this client can read
                self.waiter.set_exception(OSError(f"unreadable reply from the model runtime: {exc}"))
                return
            if reply is not None:
                self.waiter.set_result(reply)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionResetError("the model runtime closed the connection"))


def _complete(buffer: bytearray) -> tuple[int, bytes, str] | None:
    """(status, body, content type) once the buffer holds one whole reply (and remove it), else None."""
    end = buffer.find(b"\r\n\r\n")
    if end < 0:
        return None
    lines = bytes(buffer[:end]).split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length, content_type = None, ""
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        name = name.strip().lower()
        if name == b"content-length":
            length = int(value)
        elif name == b"content-type":
            content_type = value.strip().decode("latin-1")
    if length is None:
        if status not in NO_BODY:
            raise OSError(f"the model runtime answered {status} without a Content-Length")
        length = 0
    if len(buffer) < end + 4 + length:
        return None
    body = bytes(buffer[end + 4:end + 4 + length])
    del buffer[:end + 4 + length]
    return status, body, content_type


class RuntimePool:
    """Idle connections per runtime port; a request takes one (or opens one) and gives it back."""

    def __init__(self) -> None:
        self._idle: dict[int, list[_Connection]] = {}

    async def post(self, port: int, body: bytes, content_type: str, accept: str,
                   timeout: float) -> tuple[int, bytes, str]:
        head = (f"POST /invocations HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Type: "
                f"{content_type or 'application/octet-stream'}\r\nAccept: {accept or '*/*'}\r\n"
                f"Content-Length: {len(body)}\r\n\r\n").encode("latin-1")
        for attempt in (0, 1):
            conn = await self._take(port)
            try:
                reply = await self._exchange(conn, head + body, timeout)
            except ConnectionResetError:
                if attempt or conn.received_any:  # a kept-alive connection the runtime had closed: once more
                    raise
                continue
            except BaseException:
                _close(conn)
                raise
            self._idle.setdefault(port, []).append(conn)
            return reply
        raise AssertionError("unreachable")

    async def _take(self, port: int) -> _Connection:
        idle = self._idle.get(port)
        while idle:
            conn = idle.pop()
            if not conn.closed:
                conn.received_any = False
                return conn
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Connection, "127.0.0.1", port)
        return conn

    @staticmethod
    async def _exchange(conn: _Connection, request: bytes, timeout: float) -> tuple[int, bytes, str]:
        loop = asyncio.get_running_loop()
        conn.waiter = waiter = loop.create_future()
        conn.transport.write(request)  # type: ignore[union-attr]
        timer = loop.call_later(timeout, _expire, waiter)
        try:
            return await waiter
        finally:
            timer.cancel()
            conn.waiter = None

    def close(self) -> None:
        for idle in self._idle.values():
            for conn in idle:
                _close(conn)
        self._idle.clear()


def _expire(waiter: asyncio.Future) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError("the model runtime did not answer in time"))


def _close(conn: _Connection) -> None:
    conn.closed = True
    if conn.transport is not None:
        conn.transport.close()
