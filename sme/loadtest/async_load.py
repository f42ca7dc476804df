"""The load process's side of an asynchronous endpoint (imported by the locustfile only: it uses gevent).

A user submits with ``submit_headers`` and hands a 202's locations to ``submitted``. Where the endpoint
notifies through SNS, the parent has subscribed an SQS inbox to its topics (``async_inbox``): a greenlet
receives from it (``_receive_forever``) and each notification ends its request. When both outcomes are
notified, S3 is listed only after the last submission, every BACKSTOP_POLL_S, as the fallback for a lost
notification (a result written less than BACKSTOP_POLL_S before is left for its notification, still on its way) (when only one outcome is notified, S3 polling runs as without topics). Without topics, a
greenlet polls S3 every
POLL_S (``start_polling``) and records each result into the load process's ``Recorder`` as one request with its
end-to-end latency (a failure object as the error ``async:failed``), so the whole engine (per-second rows,
stages, percentiles from full histograms, SLOs) reads end-to-end latencies. At the end ``drain`` polls on
for up to the target's timeout, and whatever is still pending is reported so. Each request is one row of
``async_requests.csv`` (inference id, outcome, when sent, when its result object was written by S3's clock,
when the poll saw it, latency), written as it completes, nothing kept in memory beyond what is pending.
"""

from __future__ import annotations

import csv
import logging
import os
import time
from time import perf_counter
from typing import Any

import gevent

from sme.loadtest.async_target import AsyncBook

POLL_S = 0.5
BACKSTOP_POLL_S = 5.0
COLUMNS = ["inference_id", "outcome", "sent_at", "written_at", "seen_at", "e2e_ms", "seen_by", "received_at"]


class AsyncLoad:
    def __init__(self, spec: dict[str, Any], bodies: list[bytes], recorder: Any, out: str | None, timeout: float):
        self.spec, self.recorder, self.timeout = spec, recorder, timeout
        self.inputs = dict(zip(bodies, spec["inputs"]))
        self.path = os.path.join(out, "async_requests.csv") if out else None
        self._book: AsyncBook | None = None
        self._rows: Any = None
        self._poller: Any = None
        self._receiver: Any = None
        inbox = spec.get("inbox") or {}
        self.inbox_url = inbox.get("queue_url")
        # both outcomes notified: S3 is only the backstop for a lost notification
        self.poll_s = BACKSTOP_POLL_S if inbox.get("success") and inbox.get("error") else POLL_S

    def book(self) -> AsyncBook:
        if self._book is None:  # made in the process that submits: its pid is in the run's InferenceIds
            self._book = AsyncBook(_lister(self.spec["region"]))
        return self._book

    def submit_headers(self, body: bytes, content_type: str) -> tuple[str, dict[str, str]]:
        inference_id = self.book().next_id()
        return inference_id, {"X-Amzn-SageMaker-InputLocation": self.inputs[body],
                              "X-Amzn-SageMaker-Inference-Id": inference_id,
                              "X-Amzn-SageMaker-Content-Type": content_type}

    def submitted(self, inference_id: str, headers: Any, sent_wall: float, sent_perf: float) -> bool:
        output = headers.get("X-Amzn-SageMaker-OutputLocation")
        if not output:
            return False
        self.book().submitted(inference_id, output, headers.get("X-Amzn-SageMaker-FailureLocation"), sent_wall,
                              sent_perf)
        return True

    def start_polling(self) -> None:
        if self._poller is None and self.poll_s == POLL_S:
            self._poller = gevent.spawn(self._poll_forever)
        if self.inbox_url and self._receiver is None:
            self._receiver = gevent.spawn(self._receive_forever, _sqs(self.spec["region"]))

    def _poll_forever(self) -> None:
        while True:
            self.poll_once()
            gevent.sleep(self.poll_s)

    def _receive_forever(self, sqs: Any) -> None:
        while True:
            try:
                self.receive_once(sqs, wait_s=1)
            except Exception as exc:  # noqa: BLE001 - SQS refused or was unreachable once: S3 polling backs it up
                logging.getLogger("sme").warning("receiving the asynchronous notifications failed: %s", exc)
                gevent.sleep(POLL_S)

    def receive_once(self, sqs: Any, wait_s: int) -> int:
        """One ReceiveMessage (up to 10); each notification of this run's requests ends it. Every message is
        deleted from the inbox, this run's or not (the inbox is this run's own)."""
        from sme.loadtest.async_notice import parse

        messages = sqs.receive_message(QueueUrl=self.inbox_url, MaxNumberOfMessages=10,
                                       WaitTimeSeconds=wait_s).get("Messages", ())
        book = self.book()
        for message in messages:
            notice = parse(message.get("Body", ""))
            done = book.notified(notice, time.time(), perf_counter()) if notice else None
            if done is not None:
                self._record(done)
        if messages:
            sqs.delete_message_batch(QueueUrl=self.inbox_url, Entries=[
                {"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(messages)])
        return len(messages)

    def poll_once(self, settle_s: float = 0.0) -> None:
        book = self.book()
        if not book.pending:
            return
        try:
            done = book.poll(time.time(), perf_counter(), settle_s)
        except Exception as exc:  # noqa: BLE001 - S3 refused or was unreachable once: try again next poll
            logging.getLogger("sme").warning("polling the asynchronous results failed: %s", exc)
            return
        for c in done:
            self._record(c)

    def _record(self, c: Any) -> None:
        self.recorder.record(c.seen_wall, c.e2e_ms, None if c.succeeded else "async:failed")
        self._row([c.inference_id, "succeeded" if c.succeeded else "failed", f"{c.sent_wall:.6f}",
                   f"{c.written_at:.3f}", f"{c.seen_wall:.6f}", f"{c.e2e_ms:.3f}", c.source,
                   "" if c.received_at is None else f"{c.received_at:.3f}"])

    def drain(self) -> None:
        """After the last submission: poll on (and receive notifications) until nothing is pending or the
        target's timeout has passed; one last listing then catches results whose notification never came."""
        book = self.book()
        deadline = perf_counter() + self.timeout
        next_poll = perf_counter() + (self.poll_s if self.poll_s != POLL_S else 0.0)
        while book.pending and perf_counter() < deadline:
            if perf_counter() >= next_poll:
                self.poll_once(self.poll_s if self.poll_s != POLL_S else 0.0)  # backstop: notifications first
                next_poll = perf_counter() + self.poll_s
            if book.pending:
                gevent.sleep(POLL_S)
        if book.pending:
            self.poll_once()
        for greenlet in (self._poller, self._receiver):
            if greenlet is not None:
                greenlet.kill(block=True)
        for request in book.pending.values():
            self._row([request.inference_id, "pending", f"{request.sent_wall:.6f}", "", "", "", "", ""])
        if self._rows is not None:
            self._rows[0].close()

    def summary(self) -> dict[str, Any]:
        book = self.book()
        out = {**book.summary(), "poll_interval_s": self.poll_s,
               "completions_from": "sns, with s3 polling as the fallback" if self.inbox_url else "s3 polling"}
        split = book.split.summary()
        if split:
            out["per_request"] = {**split, "source": PER_REQUEST_SOURCE}
        return {"async": out}

    def _row(self, values: list[str]) -> None:
        if self.path is None:
            return
        if self._rows is None:
            fh = open(self.path, "a", newline="")
            writer = csv.writer(fh)
            if fh.tell() == 0:
                writer.writerow(COLUMNS)
            self._rows = (fh, writer)
        self._rows[1].writerow(values)


PER_REQUEST_SOURCE = ("each request's SNS notification: sent (this machine's clock) -> receivedTime -> eventTime "
                      "(SageMaker's clock, milliseconds) -> notification received; queue and processing are "
                      "together in in_sagemaker (AWS splits them only per minute: see per_minute)")


def _sqs(region: str) -> Any:
    import boto3
    from botocore.config import Config

    return boto3.session.Session().client("sqs", region_name=region, config=Config(retries={"max_attempts": 3}))


def _lister(region: str) -> Any:
    import boto3
    from botocore.config import Config

    s3 = boto3.session.Session().client("s3", region_name=region, config=Config(retries={"max_attempts": 3}))

    def list_page(bucket: str, prefix: str, start_after: str, token: str | None) -> tuple[list, str | None]:
        kwargs: dict[str, Any] = {"Bucket": bucket, "Prefix": prefix}
        if token:
            kwargs["ContinuationToken"] = token
        elif start_after:
            kwargs["StartAfter"] = start_after
        page = s3.list_objects_v2(**kwargs)
        keys = [(o["Key"], o["LastModified"].timestamp()) for o in page.get("Contents", ())]
        return keys, page.get("NextContinuationToken") if page.get("IsTruncated") else None

    return list_page
