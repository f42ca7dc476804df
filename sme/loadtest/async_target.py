"""Load against an asynchronous endpoint: every InferenceId followed until its output (or failure) object exists.

A load process submits with InvokeEndpointAsync (the payload is an S3 object uploaded once per distinct body
by the parent: ``upload_inputs``) and an ``AsyncBook`` keeps what is pending. A poller lists the result
prefixes with ListObjectsV2, one call per poll and location for everything pending (more only when a page
of 1,000 keys is full), so the cost per pending request does not grow with how many are pending:

- this process's InferenceIds are ``<run>-<sequence>``, so its results sort by when they were sent; a listing
  asks only for its own prefix and starts after the newest result of the oldest request still pending
  (``StartAfter``), so completed requests before it are never listed again;
- a result key found is matched to its request by the exact OutputLocation / FailureLocation the service
  answered with, so the book does not assume how the service names results; if a service names them
  otherwise than ``<InferenceId>...`` the listing falls back to the whole result prefix (slower, still exact).

The end-to-end latency of a request is from its send (its due time in the open model) until the poll that saw
its result object; the object's LastModified (whole seconds in S3) is kept beside it, so the two can be
reconciled: the poll can only be later, by at most a poll interval plus one listing.

Where the endpoint notifies through SNS, a request can also end with its notification (``notified``): then
its latency is from its send until the notification was received, and the notification's own times split it
(``Split``): send -> ``receivedTime`` (to SageMaker), ``receivedTime`` -> ``eventTime`` (in SageMaker: its queue
and the processing together; AWS tells them apart only per minute, in CloudWatch) and ``eventTime`` -> received
(the notification's way back). Whichever sees a request first, the listing or the notification, ends it.
Pure Python with an injected lister: no gevent, no boto3 (the load process passes them in).
"""

from __future__ import annotations

import collections
import hashlib
import os
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable, Iterable

from sme.core.names import ASYNC_INPUTS
from sme.loadtest import hdr
from sme.loadtest.async_notice import Notice

# (bucket, prefix, start_after, continuation token) -> ([(key, last modified epoch)], next token or None)
ListPage = Callable[[str, str, str, "str | None"], "tuple[list[tuple[str, float]], str | None]"]
OUTCOMES = ("succeeded", "failed", "pending")


@dataclass
class Pending:
    inference_id: str
    seq: int
    sent_wall: float
    sent_perf: float
    keys: dict[tuple[str, str], bool]  # (bucket, key) -> True for the output, False for the failure object


@dataclass
class Completion:
    inference_id: str
    succeeded: bool
    e2e_ms: float
    seen_wall: float
    sent_wall: float
    written_at: float  # the result object's LastModified, or the notification's eventTime (epoch seconds)
    source: str = "s3"  # what saw it first: "s3" (a listing) or "sns" (its notification)
    received_at: float | None = None  # the notification's receivedTime


@dataclass
class Location:
    """One listed prefix: its pending requests in send order (lazily pruned)."""

    bucket: str
    prefix: str
    ordered: bool  # keys begin with this process's InferenceIds: StartAfter applies
    queue: collections.deque = field(default_factory=collections.deque)  # (seq, inference id)


class AsyncBook:
    def __init__(self, list_page: ListPage, run: str | None = None):
        self.list_page = list_page
        self.run = run or f"sme{uuid.uuid4().hex[:8]}p{os.getpid()}"
        self._seq = 0
        self.pending: dict[str, Pending] = {}
        self.by_key: dict[tuple[str, str], str] = {}
        self.locations: dict[tuple[str, str], Location] = {}
        self.counts = {"submitted": 0, "succeeded": 0, "failed": 0}
        self.seen_by = {"s3": 0, "sns": 0}
        self.split = Split()
        self.polls = self.list_calls = self.keys_listed = 0

    def next_id(self) -> str:
        self._seq += 1
        return f"{self.run}-{self._seq:010d}"

    def submitted(self, inference_id: str, output_uri: str, failure_uri: str | None, sent_wall: float,
                  sent_perf: float) -> None:
        seq = int(inference_id.rsplit("-", 1)[1])
        keys = {_split(output_uri): True}
        if failure_uri:
            keys[_split(failure_uri)] = False
        self.pending[inference_id] = Pending(inference_id, seq, sent_wall, sent_perf, keys)
        self.counts["submitted"] += 1
        for bucket_key in keys:
            self.by_key[bucket_key] = inference_id
            self._location(bucket_key, inference_id).queue.append((seq, inference_id))

    def _location(self, bucket_key: tuple[str, str], inference_id: str) -> Location:
        bucket, key = bucket_key
        directory, _, name = key.rpartition("/")
        directory = directory + "/" if directory else ""
        ordered = name.startswith(inference_id)
        prefix = directory + (self.run + "-" if ordered else "")
        location = self.locations.get((bucket, prefix))
        if location is None:
            location = self.locations[(bucket, prefix)] = Location(bucket, prefix, ordered)
        return location

    def poll(self, now_wall: float, now_perf: float, settle_s: float = 0.0) -> list[Completion]:
        """One listing per location with something pending; the requests whose result object now exists.
        ``settle_s``: a result written less than this long ago is left for its notification (S3 is then the
        backstop for a lost one, not a race with one on its way)."""
        self.polls += 1
        done: list[Completion] = []
        for location in list(self.locations.values()):
            oldest = self._oldest(location)
            if oldest is None:
                continue
            start_after = f"{location.prefix}{oldest - 1:010d}~" if location.ordered and oldest > 1 else ""
            for key, modified in self._list(location, start_after):
                if now_wall - modified < settle_s:
                    continue
                found = self._found(location.bucket, key, modified, now_wall, now_perf)
                if found is not None:
                    done.append(found)
        return done

    def _oldest(self, location: Location) -> int | None:
        queue = location.queue
        while queue and queue[0][1] not in self.pending:
            queue.popleft()
        return queue[0][0] if queue else None

    def _list(self, location: Location, start_after: str) -> Iterable[tuple[str, float]]:
        token = None
        while True:
            keys, token = self.list_page(location.bucket, location.prefix, start_after, token)
            self.list_calls += 1
            self.keys_listed += len(keys)
            yield from keys
            if not token:
                return

    def _found(self, bucket: str, key: str, modified: float, now_wall: float, now_perf: float) -> Completion | None:
        inference_id = self.by_key.get((bucket, key))
        request = self.pending.pop(inference_id, None) if inference_id else None
        if request is None:
            return None
        for bucket_key in request.keys:
            self.by_key.pop(bucket_key, None)
        succeeded = request.keys[(bucket, key)]
        self._count(succeeded, "s3")
        return Completion(inference_id, succeeded, (now_perf - request.sent_perf) * 1000.0, now_wall,
                          request.sent_wall, modified)

    def notified(self, notice: Notice, now_wall: float, now_perf: float) -> Completion | None:
        """The request a notification announces, now complete (None: not this run's, or already seen)."""
        request = self.pending.pop(notice.inference_id, None)
        if request is None:
            return None
        for bucket_key in request.keys:
            self.by_key.pop(bucket_key, None)
        self._count(notice.succeeded, "sns")
        e2e_ms = (now_perf - request.sent_perf) * 1000.0
        self.split.add(request.sent_wall, notice.received_at, notice.ready_at, now_wall, e2e_ms)
        return Completion(notice.inference_id, notice.succeeded, e2e_ms, now_wall, request.sent_wall,
                          notice.ready_at, "sns", notice.received_at)

    def _count(self, succeeded: bool, source: str) -> None:
        self.counts["succeeded" if succeeded else "failed"] += 1
        self.seen_by[source] += 1

    def summary(self) -> dict[str, Any]:
        """Every InferenceId submitted is succeeded, failed or pending: the three add up to submitted."""
        return {**self.counts, "pending": len(self.pending), "seen_by": dict(self.seen_by), "polls": self.polls,
                "list_calls": self.list_calls, "keys_listed": self.keys_listed}


PARTS = ("to_sagemaker", "in_sagemaker", "notification")


class Split:
    """The parts of the end-to-end latency of the requests that ended with their notification: full HDR
    count tables (percentiles as hdrh reads them) and exact sums (means, which add up where percentiles do
    not). The send and the receipt are on this machine's clock, receivedTime and eventTime on SageMaker's:
    a skew between the two clocks moves time between the first and the last part, never in or out of the
    middle one, and the three always add up to the end-to-end time (to the millisecond AWS's times keep)."""

    def __init__(self) -> None:
        self.counts: dict[str, hdr.Counts] = {p: {} for p in PARTS}
        self.sums = dict.fromkeys(PARTS + ("e2e",), 0.0)
        self.requests = 0

    def add(self, sent: float, received: float, ready: float, seen: float, e2e_ms: float) -> None:
        values = dict(zip(PARTS, ((received - sent) * 1e3, (ready - received) * 1e3, (seen - ready) * 1e3)))
        for part, ms in values.items():
            hdr.count_into(self.counts[part], max(ms, 0.0))
            self.sums[part] += ms
        self.sums["e2e"] += e2e_ms
        self.requests += 1

    def summary(self) -> dict[str, Any] | None:
        if not self.requests:
            return None
        out: dict[str, Any] = {"requests": self.requests, "e2e_mean_ms": round(self.sums["e2e"] / self.requests, 3)}
        for part in PARTS:
            pairs = sorted(self.counts[part].items())
            at = hdr.percentiles_us(pairs, (50, 90, 99, 100))
            out[f"{part}_ms"] = {"mean": round(self.sums[part] / self.requests, 3),
                                 **{name: at[p] / 1000.0 for name, p in (("p50", 50), ("p90", 90), ("p99", 99),
                                                                           ("max", 100))}}
        return out


def _split(uri: str) -> tuple[str, str]:
    bucket, _, key = uri.split("://", 1)[-1].partition("/")
    return bucket, key


# -- in the parent: the inputs, once per distinct payload --------------------------------------------------
def input_key(experiment: str, body: bytes) -> str:
    return f"{ASYNC_INPUTS}/{experiment}/{hashlib.sha256(body).hexdigest()[:32]}"  # (teardown deletes them)


def upload_inputs(s3: Any, bucket: str, experiment: str, bodies: Iterable[bytes], content_type: str) -> list[str]:
    """One S3 object per distinct body (named by its hash, so a rerun reuses it); the URI of each body."""
    uris, done = [], {}
    for body in bodies:
        key = input_key(experiment, body)
        if key not in done:
            try:
                s3.head_object(Bucket=bucket, Key=key)
            except Exception:  # noqa: BLE001 - not there yet (404), upload it
                s3.put_object(Bucket=bucket, Key=key, Body=body, ContentType=content_type)
            done[key] = f"s3://{bucket}/{key}"
        uris.append(done[key])
    return uris
