"""Zip the proxy's handler source at deploy, byte-for-byte reproducibly (so its CodeSha256 is a version)."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from pathlib import Path

HANDLER = "handler.handler"
SOURCE = Path(__file__).with_name("handler.py")


def handler_zip() -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        info = zipfile.ZipInfo("handler.py", date_time=(1980, 1, 1, 0, 0, 0))
        info.external_attr = 0o644 << 16
        info.compress_type = zipfile.ZIP_DEFLATED
        zf.writestr(info, SOURCE.read_bytes())
    return buf.getvalue()


def code_sha256() -> str:
    """What Lambda reports as CodeSha256 for this zip: base64 of its SHA-256."""
    return base64.b64encode(hashlib.sha256(handler_zip()).digest()).decode()
