"""SageMaker Runtime: InvokeEndpoint answered by the endpoint's real model runtimes.

AWS behaviour reproduced: InvokeEndpoint on an endpoint that does not exist answers HTTP 400
``ValidationError``; a container's 4xx/5xx answers HTTP 424 ``ModelError`` with ``OriginalStatusCode`` and
``OriginalMessage``; a success carries the model's Content-Type and ``x-Amzn-Invoked-Production-Variant``.
(moto 5.2 answers canned bodies for any endpoint name.)
"""

from __future__ import annotations

from typing import Any


def forward_to_runtimes(endpoints: Any) -> None:
    """InvokeEndpoint goes to the endpoint's runtimes (a ``LocalEndpoints``) instead of moto's canned replies."""
    import json

    from moto.sagemakerruntime.responses import SageMakerRuntimeResponse

    from sme.local.aws.patches.sagemaker import LIFECYCLE

    original = getattr(SageMakerRuntimeResponse, "_moto_invoke_endpoint", SageMakerRuntimeResponse.invoke_endpoint)
    SageMakerRuntimeResponse._moto_invoke_endpoint = original

    def invoke_endpoint(self: Any) -> Any:
        if LIFECYCLE.hooks is not endpoints:  # this local AWS has stopped: moto's own reply
            return original(self)
        name = self.path.split("/")[2] if self.path.startswith("/endpoints/") else self._get_param("EndpointName")
        body = self.body if isinstance(self.body, bytes) else (self.body or "").encode()
        content_type = self.headers.get("Content-Type", "application/octet-stream")
        accept = self.headers.get("Accept", "*/*")
        variant = self.headers.get("X-Amzn-SageMaker-Target-Variant")
        try:
            status, data, headers, used = endpoints.invoke(self.current_account, self.region, name, body,
                                                          content_type, accept, variant)
        except LookupError as exc:
            err = json.dumps({"__type": "ValidationError", "message": str(exc)})
            return 400, {"Content-Type": "application/json", "x-amzn-ErrorType": "ValidationError"}, err
        if status >= 400:
            message = data.decode("utf-8", "replace")[:1000]
            err = json.dumps({"__type": "ModelError", "message": f"Received client error ({status}) from model "
                              f"with message \"{message}\"", "OriginalStatusCode": status,
                              "OriginalMessage": message})
            return 424, {"Content-Type": "application/json", "x-amzn-ErrorType": "ModelError"}, err
        out = {"Content-Type": headers.get("content-type", "application/json"),
               "x-Amzn-Invoked-Production-Variant": used}
        return 200, out, data

    SageMakerRuntimeResponse.invoke_endpoint = invoke_endpoint
