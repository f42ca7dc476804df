"""SigV4 for one fixed InvokeEndpoint URL, per request, at a fraction of botocore's cost.

botocore's ``SigV4Auth`` rebuilds the canonical URI, host and header list and derives the signing key
(four HMACs) for every request: ~110 us here, as much as the HTTP request itself. Only the body, the
time and the credentials change between requests, so this signer keeps everything else and the day's
signing key, and does one SHA-256 of the body, one of the canonical request and one HMAC. Credentials
come from a botocore credentials object each time (``get_frozen_credentials``), so refreshable
credentials renew themselves. tests/test_loadtest_units.py checks it against botocore's ``SigV4Auth``.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import Any
from urllib.parse import quote, urlsplit


class InvokeSigner:
    def __init__(self, credentials: Any, url: str, region: str, service: str = "sagemaker",
                 method: str = "POST", content_type: str = "application/json", clock=time.gmtime):  # type: ignore[no-untyped-def]
        parts = urlsplit(url)
        self.credentials, self.region, self.service, self.method = credentials, region, service, method
        self.content_type = " ".join(content_type.split())
        self.host = parts.netloc
        if (parts.scheme, parts.port) in (("http", 80), ("https", 443)):
            self.host = parts.hostname or parts.netloc
        self.path = quote(parts.path or "/", safe="/~")
        self.clock = clock
        self._key: tuple[tuple[str, str], bytes] | None = None

    def _signing_key(self, secret: str, day: str) -> bytes:
        if self._key is None or self._key[0] != (secret, day):
            k = hmac.new(("AWS4" + secret).encode(), day.encode(), hashlib.sha256).digest()
            for part in (self.region, self.service, "aws4_request"):
                k = hmac.new(k, part.encode(), hashlib.sha256).digest()
            self._key = ((secret, day), k)
        return self._key[1]

    def headers(self, body: bytes) -> dict[str, str]:
        creds = self.credentials.get_frozen_credentials()
        amz_date = time.strftime("%Y%m%dT%H%M%SZ", self.clock())
        day = amz_date[:8]
        signed = [("content-type", self.content_type), ("host", self.host), ("x-amz-date", amz_date)]
        if creds.token:
            signed.append(("x-amz-security-token", creds.token))
        names = ";".join(n for n, _ in signed)
        canonical = "\n".join([self.method, self.path, "", *(f"{n}:{v}" for n, v in signed), "", names,
                               hashlib.sha256(body).hexdigest()])
        scope = f"{day}/{self.region}/{self.service}/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{amz_date}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signature = hmac.new(self._signing_key(creds.secret_key, day), to_sign.encode(), hashlib.sha256).hexdigest()
        out = {"Content-Type": self.content_type, "X-Amz-Date": amz_date,
               "Authorization": f"AWS4-HMAC-SHA256 Credential={creds.access_key}/{scope}, "
                                f"SignedHeaders={names}, Signature={signature}"}
        if creds.token:
            out["X-Amz-Security-Token"] = creds.token
        return out
