"""SageMaker's recordio-protobuf (`application/x-recordio-protobuf`), read and written by hand.

A body is a run of frames: magic 0xCED7230A and a length (both little-endian uint32), then one
serialized `Record`, padded to 4 bytes. The messages used here (from SageMaker's record.proto):
`Record {map<string, Value> features = 1; map<string, Value> label = 2}`,
`Value {Float32Tensor float32_tensor = 2; Float64Tensor float64_tensor = 3; Int32Tensor int32_tensor = 7}`,
`*Tensor {repeated values = 1 [packed]; repeated uint64 keys = 2 [packed]; repeated uint64 shape = 3 [packed]}`.
A tensor with keys is sparse (`keys` are column indexes, `shape[0]` the width). Written by hand because
the protobuf package is not a runtime dependency and two messages do not justify one.
"""

from __future__ import annotations

import struct

import numpy as np

MAGIC = 0xCED7230A
_TENSOR_TYPES = {2: "<f", 3: "<d", 7: "int32"}  # Value field number -> element type


class RecordIOError(ValueError):
    """The body is not recordio-protobuf; the message says where it stops making sense."""


def write_label_records(records: list[dict[str, list[float]]]) -> bytes:
    """One frame per dict, each key a `label` entry holding a float32 tensor.

    The XGBoost container (serve_utils._encode_selected_predictions_recordio_protobuf) never empties its
    buffer between records, so frame n holds records 1..n concatenated; a protobuf reader merges them and
    sees record n (same keys, later values win). Kept, so that clients see the same bytes' meaning.
    """
    out = bytearray()
    serialized = bytearray()
    for record in records:
        for key, values in record.items():
            tensor = _field_bytes(1, b"".join(struct.pack("<f", float(v)) for v in values))
            value = _field_bytes(2, tensor)
            serialized += _field_bytes(2, _field_bytes(1, key.encode()) + _field_bytes(2, value))
        out += struct.pack("<II", MAGIC, len(serialized)) + serialized + b"\0" * (-len(serialized) % 4)
    return bytes(out)


def read_feature_rows(body: bytes):
    """The `features["values"]` tensor of every record: a dense float array, or a CSR matrix when the
    first record is sparse (as the container's reader decides)."""
    from scipy.sparse import csr_matrix, vstack

    rows = [_features_values(record) for record in _frames(bytes(body))]
    if not rows:
        raise RecordIOError("no records in the body")
    if rows[0][1] is None:
        return np.vstack([values for values, _, _ in rows]).astype(np.float64)
    sparse = []
    for values, keys, shape in rows:
        width = int(shape[0]) if shape else (int(max(keys)) + 1 if len(keys) else 0)
        sparse.append(csr_matrix((values, (np.zeros(len(keys), dtype=int), np.asarray(keys, dtype=int))),
                                 shape=(1, width)))
    return vstack(sparse).tocsr()


def _frames(body: bytes):
    at = 0
    while at < len(body):
        if len(body) - at < 8:
            raise RecordIOError(f"a truncated frame header at byte {at}")
        magic, length = struct.unpack_from("<II", body, at)
        if magic != MAGIC:
            raise RecordIOError(f"no recordio magic number at byte {at}")
        start = at + 8
        if start + length > len(body):
            raise RecordIOError(f"the record at byte {at} runs past the end of the body")
        yield body[start:start + length]
        at = start + length + (-length % 4)


def _features_values(record: bytes):
    """(values, keys or None, shape) of the record's `features["values"]` tensor."""
    for number, payload in _fields(record):
        if number != 1:
            continue
        entry = dict(_fields(payload))
        if entry.get(1) == b"values" and 2 in entry:
            for kind, tensor in _fields(entry[2]):
                if kind in _TENSOR_TYPES:
                    return _tensor(tensor, _TENSOR_TYPES[kind])
    raise RecordIOError('a record has no features["values"] tensor')


def _tensor(payload: bytes, element: str):
    values, keys, shape = [], [], []
    for number, data in _fields(payload):
        if number == 1:
            values.append(_numbers(data, element))
        elif number == 2:
            keys.extend(_varints(data))
        elif number == 3:
            shape.extend(_varints(data))
    flat = np.concatenate(values) if values else np.zeros(0)
    return flat.astype(np.float64), (keys or None), shape


def _numbers(data: bytes | int, element: str) -> np.ndarray:
    if element == "int32":  # varints, packed or one at a time; negative int32s are 10-byte varints
        raw = _varints(data) if isinstance(data, bytes) else [data]
        return np.array([v - (1 << 64) if v >= 1 << 63 else v for v in raw], dtype=np.float64)
    if isinstance(data, int):  # an unpacked fixed-width value arrives as its integer bits
        return np.frombuffer(data.to_bytes(struct.calcsize(element), "little"), dtype=element)
    return np.frombuffer(data, dtype=element)


def _fields(message: bytes):
    """(field number, bytes or int) for each field of a serialized message."""
    at = 0
    while at < len(message):
        key, at = _varint(message, at)
        number, wire = key >> 3, key & 7
        if wire == 0:
            value, at = _varint(message, at)
        elif wire == 2:
            length, at = _varint(message, at)
            value, at = message[at:at + length], at + length
        elif wire in (1, 5):
            size = 8 if wire == 1 else 4
            value, at = int.from_bytes(message[at:at + size], "little"), at + size
        else:
            raise RecordIOError(f"unsupported protobuf wire type {wire}")
        if at > len(message):
            raise RecordIOError("a protobuf field runs past the end of its message")
        yield number, value


def _varint(data: bytes, at: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if at >= len(data):
            raise RecordIOError("a truncated varint")
        byte = data[at]
        at += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, at
        shift += 7


def _varints(data: bytes | int) -> list[int]:
    if isinstance(data, int):
        return [data]
    out, at = [], 0
    while at < len(data):
        value, at = _varint(data, at)
        out.append(value)
    return out


def _field_bytes(number: int, payload: bytes) -> bytes:
    return _varint_bytes(number << 3 | 2) + _varint_bytes(len(payload)) + payload


def _varint_bytes(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)
