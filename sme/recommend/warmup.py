"""A serverless candidate's ladder starts warm: its knee is the capacity of running runtimes, not of cold starts.

A serverless endpoint runs nothing until requests come; each request that finds no idle runtime starts one
and waits for it, and while MaxConcurrency of them wait every other request is throttled. A ladder that
began cold would spend its first steps (or all of a short one) measuring start-ups and call that the knee.
So before the ladder the sweep sends ``max_concurrency`` requests at once (at most ``MAX_THREADS``), each
retried while throttled until it is answered: that many runtimes are then up. Cold starts are still what a
user meets after an idle spell: `sme loadtest` reports them (ModelSetupTime) in the candidate's own run.
"""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

MAX_THREADS = 32
DEADLINE_S = 600.0  # a generous bound: a start-up on a busy machine, or a large model's, takes long
RETRY_S = 0.25


def warm(aws: Any, endpoint: str, payload: dict[str, Any], concurrency: int, stop: threading.Event,
         source: str) -> int:
    """Send ``concurrency`` requests at once until each is answered; return how many were. A model error is
    an answer (the runtime is up); only throttling is retried."""
    from sme.loadtest.payloads import read_bodies

    body = read_bodies(payload, Path("."), source)[0]
    client = aws.client("sagemaker-runtime")
    deadline = time.monotonic() + DEADLINE_S
    kwargs = {"EndpointName": endpoint, "Body": body, "ContentType": payload.get("content_type") or "text/csv"}

    def one(_: int) -> bool:
        while time.monotonic() < deadline and not stop.is_set():
            try:
                client.invoke_endpoint(**kwargs)
                return True
            except Exception as exc:  # noqa: BLE001 - botocore's ClientError, by its code
                code = getattr(exc, "response", {}).get("Error", {}).get("Code")
                if code != "ThrottlingException":
                    return code is not None  # a ModelError still means a runtime answered
            time.sleep(RETRY_S)
        return False

    with ThreadPoolExecutor(max_workers=min(concurrency, MAX_THREADS), thread_name_prefix="sme-warm") as pool:
        return sum(pool.map(one, range(min(concurrency, MAX_THREADS))))
