"""The twin's event-stream frames, read back by botocore's own parser with sagemaker-runtime's model.

botocore (not sme) decodes: ``EventStreamBuffer`` checks the prelude and message CRCs, and
``EventStream`` turns the frames into InvokeEndpointWithResponseStream's events or raises its errors.
"""

from __future__ import annotations

import botocore.session
import pytest
from botocore.eventstream import EventStream, EventStreamBuffer
from botocore.exceptions import EventStreamError
from botocore.parsers import EventStreamJSONParser

from sme.local.aws import eventstream


def read(frames: bytes) -> list[dict]:
    """The events botocore makes of these bytes, as a boto3 user iterates them."""
    model = botocore.session.get_session().get_service_model("sagemaker-runtime")
    shape = model.operation_model("InvokeEndpointWithResponseStream").output_shape.members["Body"]

    class Raw:
        def stream(self):
            yield frames

    return list(EventStream(Raw(), shape, EventStreamJSONParser(), "InvokeEndpointWithResponseStream"))


def test_payload_parts_carry_the_bytes_as_given_even_split_mid_event():
    pieces = [b'data:{"token":{"text":" Alice"}}\n\n', b"data:{\"tok", b'en":{}}\n\n', "é".encode() * 3, b""]
    events = read(b"".join(eventstream.payload_part(p) for p in pieces))
    assert [e["PayloadPart"]["Bytes"] for e in events] == pieces


def test_each_frame_is_one_message_with_valid_checksums():
    buffer = EventStreamBuffer()
    buffer.add_data(eventstream.payload_part(b"x" * 70000) + eventstream.payload_part(b"y"))
    messages = list(buffer)
    assert [len(m.payload) for m in messages] == [70000, 1]
    assert messages[0].headers == {":event-type": "PayloadPart", ":content-type": "application/octet-stream",
                                   ":message-type": "event"}


def test_a_corrupted_frame_is_refused_by_botocore():
    frame = bytearray(eventstream.payload_part(b"hello"))
    frame[-6] ^= 0xFF
    buffer = EventStreamBuffer()
    buffer.add_data(bytes(frame))
    with pytest.raises(Exception, match="(?i)checksum|crc"):
        list(buffer)


def test_a_model_stream_error_is_raised_by_botocore_with_its_code_and_message():
    frames = eventstream.payload_part(b"data:{}\n\n") + eventstream.exception(
        "ModelStreamError", {"Message": "connection closed", "ErrorCode": "StreamBroken"})
    with pytest.raises(EventStreamError) as caught:
        read(frames)
    error = caught.value.response["Error"]
    assert error["Code"] == "ModelStreamError" and error["Message"] == "connection closed"


def test_a_runtime_that_breaks_off_mid_answer_ends_the_stream_with_stream_broken():
    """A real socket: the runtime writes one chunk of a chunked answer, then closes the connection."""
    import asyncio

    from sme.local.aws import stream_invoke

    class Collected:
        def __init__(self):
            self.data = b""

        async def write(self, data):
            self.data += data

        async def write_eof(self):
            pass

    async def runtime(reader, writer):
        await reader.readuntil(b"\r\n\r\n")
        writer.write(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                     b"9\r\ndata:{}\n\n\r\n")
        await writer.drain()
        writer.close()

    async def exchange():
        server = await asyncio.start_server(runtime, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        reply = await stream_invoke.RuntimeReply.open(port, b"{}", {"Content-Type": "application/json"}, 5)
        sent = Collected()
        status = await stream_invoke._relay(reply, sent)
        server.close()
        return reply, status, sent.data

    reply, status, frames = asyncio.run(exchange())
    assert (reply.status, reply.content_type, status) == (200, "text/event-stream", 500)
    with pytest.raises(EventStreamError) as caught:
        read(frames)
    assert caught.value.response["Error"]["Code"] == "ModelStreamError"
    assert "closed before the model finished" in caught.value.response["Error"]["Message"]
    assert read(frames[:len(eventstream.payload_part(b"data:{}\n\n"))]) == [{"PayloadPart": {"Bytes": b"data:{}\n\n"}}]
