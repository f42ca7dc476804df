"""The front's kept-alive connections to the model runtimes (sme.local.aws.runtime_pool), against real sockets."""

from __future__ import annotations

import asyncio

import pytest

from sme.local.aws.runtime_pool import RuntimePool, _complete


def test_a_reply_is_complete_only_with_its_whole_body_and_the_next_one_stays_buffered():
    buffer = bytearray(b"HTTP/1.1 200 OK\r\nContent-Type: text/csv; charset=utf-8\r\nContent-Length: 5\r\n\r\n0.12")
    assert _complete(buffer) is None, "4 of 5 body bytes: not yet"
    buffer += b"3HTTP/1.1 204 No Content\r\n\r\n"
    assert _complete(buffer) == (200, b"0.123", "text/csv; charset=utf-8")
    assert _complete(buffer) == (204, b"", ""), "a 204 has no body and needs no Content-Length"
    assert buffer == bytearray()


def test_a_chunked_reply_is_refused_not_guessed_at():
    with pytest.raises(OSError, match="without a Content-Length"):
        _complete(bytearray(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n"))


class Runtime:
    """A stand-in runtime on loopback: echoes the body in upper case; counts connections; may close idle ones."""

    def __init__(self, close_after_reply: bool = False):
        self.connections = 0
        self.close_after_reply = close_after_reply

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        while True:
            head = await reader.readuntil(b"\r\n\r\n") if not reader.at_eof() else b""
            if not head:
                break
            length = int(next(line.split(b":")[1] for line in head.split(b"\r\n") if line.lower().startswith(b"content-length")))
            body = (await reader.readexactly(length)).upper()
            writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body))
            await writer.drain()
            if self.close_after_reply:
                break
        writer.close()


async def _run(runtime: Runtime, bodies: list[bytes], pause: float = 0.0) -> list[tuple[int, bytes, str]]:
    server = await asyncio.start_server(runtime.serve, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    pool = RuntimePool()
    replies = []
    try:
        for body in bodies:
            replies.append(await pool.post(port, body, "text/plain", "*/*", 5.0))
            await asyncio.sleep(pause)
    finally:
        pool.close()
        server.close()
    return replies


def test_sequential_requests_share_one_kept_alive_connection():
    runtime = Runtime()
    replies = asyncio.run(_run(runtime, [b"a", b"bb", b"ccc"]))
    assert replies == [(200, b"A", "text/plain"), (200, b"BB", "text/plain"), (200, b"CCC", "text/plain")]
    assert runtime.connections == 1


def test_a_connection_the_runtime_closed_while_idle_is_replaced_without_failing_the_request():
    runtime = Runtime(close_after_reply=True)
    replies = asyncio.run(_run(runtime, [b"a", b"b", b"c"], pause=0.05))
    assert [r[1] for r in replies] == [b"A", b"B", b"C"]
    assert runtime.connections == 3


def test_a_runtime_that_does_not_answer_in_time_is_a_timeout():
    async def main():
        async def silent(reader, writer):
            await reader.read(100)
            await asyncio.sleep(5)

        server = await asyncio.start_server(silent, "127.0.0.1", 0)
        pool = RuntimePool()
        try:
            with pytest.raises(TimeoutError):
                await pool.post(server.sockets[0].getsockname()[1], b"x", "", "", 0.2)
        finally:
            pool.close()
            server.close()

    asyncio.run(main())
