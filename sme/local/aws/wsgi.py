"""WSGI helpers shared by the twin's front (the call recorder) and its execute-api."""

from __future__ import annotations

import io


def read_body(environ: dict) -> bytes:
    """The request body; it stays readable for the next WSGI layer."""
    try:
        length = int(environ.get("CONTENT_LENGTH") or 0)
    except ValueError:
        length = 0
    body = environ["wsgi.input"].read(length) if length else b""
    environ["wsgi.input"] = io.BytesIO(body)
    return body
