"""API Gateway: what moto's REST APIs lack and the twin's execute-api needs.

AWS behaviour reproduced: CreateRestApi keeps ``binaryMediaTypes`` and GetRestApi returns them (API
Gateway decodes a base64 proxy reply to bytes, and base64-encodes a request body, for those media types);
moto 5.2 drops the field.
"""

from __future__ import annotations

import json
from typing import Any

_INSTALLED = False


def install() -> None:
    """Keep ``binaryMediaTypes`` on CreateRestApi (idempotent)."""
    global _INSTALLED
    if _INSTALLED:
        return
    from moto.apigateway.responses import APIGatewayResponse

    original = APIGatewayResponse.create_rest_api

    def create_rest_api(self: Any) -> Any:
        status, headers, body = original(self)
        types = self._get_param("binaryMediaTypes")
        if status == 200 and types:
            created = json.loads(body)
            api = self.backend.apis[created["id"]]
            api.binaryMediaTypes = list(types)
            body = json.dumps(api.to_dict())
        return status, headers, body

    APIGatewayResponse.create_rest_api = create_rest_api
    _INSTALLED = True
