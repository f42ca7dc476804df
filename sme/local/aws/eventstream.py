"""AWS event-stream messages (``application/vnd.amazon.eventstream``), as the twin writes them.

One message: a 12-byte prelude (total length, headers length, both big-endian uint32, and the CRC32 of
those 8 bytes), the headers, the payload, and the CRC32 of everything before it. A header is its name's
length (1 byte), the name, a value type (7: string) and, for a string, its length (2 bytes) and bytes.
botocore reads these with ``botocore.eventstream.EventStreamBuffer``; the tests check this encoder with
it. SageMaker Runtime's InvokeEndpointWithResponseStream sends ``PayloadPart`` events and, for a failure
in mid-stream, ``ModelStreamError`` or ``InternalStreamFailure`` exceptions (botocore's service model).
"""

from __future__ import annotations

import json
import struct
import zlib

STRING = 7
CONTENT_TYPE = "application/vnd.amazon.eventstream"


def message(headers: list[tuple[str, str]], payload: bytes) -> bytes:
    encoded = b"".join(_header(name, value) for name, value in headers)
    total = 12 + len(encoded) + len(payload) + 4
    prelude = struct.pack(">II", total, len(encoded))
    head = prelude + struct.pack(">I", zlib.crc32(prelude)) + encoded + payload
    return head + struct.pack(">I", zlib.crc32(head))


def payload_part(data: bytes) -> bytes:
    """One PayloadPart event carrying these bytes of the model's answer."""
    return message([(":event-type", "PayloadPart"), (":content-type", "application/octet-stream"),
                    (":message-type", "event")], data)


def exception(kind: str, fields: dict) -> bytes:
    """An exception event (ModelStreamError, InternalStreamFailure): botocore raises EventStreamError."""
    return message([(":exception-type", kind), (":content-type", "application/json"),
                    (":message-type", "exception")], json.dumps(fields).encode())


def _header(name: str, value: str) -> bytes:
    raw_name, raw_value = name.encode("utf-8"), value.encode("utf-8")
    return struct.pack(">B", len(raw_name)) + raw_name + struct.pack(">BH", STRING, len(raw_value)) + raw_value
