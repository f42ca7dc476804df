"""AWS calls inside a sample's time budget: throttling and transient faults retry with backoff.

sme's shared clients retry on their own; the watch makes its clients with one attempt and retries here
instead, so that a retry never runs past the moment the next sample is due. A call that still fails
becomes a ``CallFailed`` that the sample records; expired credentials are told apart, because waiting
does not fix them.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Any, Callable

THROTTLING = {"Throttling", "ThrottlingException", "ThrottledException", "RequestThrottled",
              "RequestThrottledException", "TooManyRequestsException", "RequestLimitExceeded",
              "ProvisionedThroughputExceededException", "SlowDown", "LimitExceededException"}
TRANSIENT = {"InternalError", "InternalFailure", "InternalServerError", "InternalServiceError",
             "InternalServiceFault", "ServiceUnavailable", "ServiceUnavailableException", "RequestTimeout",
             "RequestTimeoutException", "PriorRequestNotComplete", "EC2ThrottledException", "Unavailable"}
EXPIRED = {"ExpiredToken", "ExpiredTokenException", "RequestExpired", "InvalidClientTokenId",
           "UnrecognizedClientException", "TokenRefreshRequired", "InvalidToken"}


@dataclass
class CallFailed(Exception):
    """A call that failed for good within its budget (what the sample's ``errors`` records)."""

    operation: str
    code: str
    message: str
    attempts: int = 1

    @property
    def expired_credentials(self) -> bool:
        return self.code in EXPIRED or self.code == "ExpiredCredentials"

    def to_json(self) -> dict[str, Any]:
        return {"source": self.operation, "code": self.code, "message": self.message, "attempts": self.attempts}


def classify(exc: BaseException) -> tuple[str, str, bool]:
    """-> (code, message, retryable) for any exception an AWS call can raise."""
    import botocore.exceptions as bx

    if isinstance(exc, bx.ClientError):
        err = exc.response.get("Error", {})
        code = str(err.get("Code") or "")
        status = int(exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode") or 0)
        retry = code in THROTTLING or code in TRANSIENT or status >= 500 or status == 429
        return code or str(status), str(err.get("Message") or exc), retry
    if isinstance(exc, (bx.NoCredentialsError, bx.PartialCredentialsError)):
        return "NoCredentials", "no AWS credentials found", False
    if isinstance(exc, bx.TokenRetrievalError) or "expired" in type(exc).__name__.lower():
        return "ExpiredCredentials", str(exc), False
    if isinstance(exc, (bx.ConnectionError, bx.HTTPClientError, bx.ReadTimeoutError)):
        return type(exc).__name__, str(exc), True
    if isinstance(exc, bx.BotoCoreError):  # e.g. a reply the parser could not read
        return type(exc).__name__, str(exc), True
    raise exc  # a bug, not an AWS failure: let it surface


@dataclass
class Retrier:
    """Calls ``fn`` until it succeeds, fails for good, or the next try would pass ``deadline``."""

    clock: Callable[[], float]
    sleep: Callable[[float], None]
    base: float = 0.1
    cap: float = 5.0
    rng: Callable[[], float] = random.random

    def call(self, operation: str, fn: Callable[[], Any], deadline: float) -> Any:
        attempt = 0
        while True:
            attempt += 1
            try:
                return fn()
            except Exception as exc:  # noqa: BLE001 - classify() re-raises what is not an AWS failure
                code, message, retryable = classify(exc)
            # exponential backoff with "equal jitter": spreads the retries of many watchers apart
            pause = min(self.cap, self.base * 2 ** (attempt - 1)) * (0.5 + self.rng() / 2)
            if not retryable or self.clock() + pause >= deadline:
                raise CallFailed(operation, code, message, attempt)
            self.sleep(pause)
