"""The asynchronous request book: every InferenceId ends succeeded, failed or pending, and a poll lists only from
the oldest request still pending (its cost does not grow with the requests completed before it)."""

from __future__ import annotations

import bisect

from sme.loadtest.async_target import AsyncBook, input_key, upload_inputs


class FakeBucket:
    """ListObjectsV2 over sorted keys (Prefix, StartAfter, pages of `page` keys), counting calls."""

    def __init__(self, page: int = 1000):
        self.objects: dict[tuple[str, str], float] = {}
        self.page = page
        self.calls: list[tuple[str, str, str]] = []

    def put(self, uri: str, at: float) -> None:
        bucket, _, key = uri[5:].partition("/")
        self.objects[(bucket, key)] = at

    def list_page(self, bucket, prefix, start_after, token):
        self.calls.append((bucket, prefix, start_after))
        keys = sorted(k for b, k in self.objects if b == bucket and k.startswith(prefix))
        begin = int(token) if token else bisect.bisect_right(keys, start_after) if start_after else 0
        chunk = keys[begin:begin + self.page]
        more = begin + self.page < len(keys)
        return [(k, self.objects[(bucket, k)]) for k in chunk], str(begin + self.page) if more else None


def submit(book: AsyncBook, n: int, failure: bool = True) -> list[tuple[str, str, str]]:
    out = []
    for _ in range(n):
        iid = book.next_id()
        output, fail = f"s3://res/out/{iid}.out", f"s3://res/failed/{iid}-error.out"
        book.submitted(iid, output, fail if failure else None, sent_wall=100.0, sent_perf=10.0)
        out.append((iid, output, fail))
    return out


def test_each_request_ends_succeeded_failed_or_pending_and_they_add_up():
    bucket = FakeBucket()
    book = AsyncBook(bucket.list_page, run="r1")
    sent = submit(book, 5)
    bucket.put(sent[0][1], 101.0)
    bucket.put(sent[2][2], 102.0)
    done = book.poll(now_wall=103.0, now_perf=13.0)
    assert {(c.inference_id, c.succeeded) for c in done} == {(sent[0][0], True), (sent[2][0], False)}
    assert all(abs(c.e2e_ms - 3000.0) < 1e-6 for c in done), "from the send to the poll that saw it"
    assert [c.written_at for c in sorted(done, key=lambda c: c.inference_id)] == [101.0, 102.0]
    summary = book.summary()
    assert (summary["submitted"], summary["succeeded"], summary["failed"], summary["pending"]) == (5, 1, 1, 3)
    assert book.poll(104.0, 14.0) == [], "a result is counted once"


def test_a_poll_is_one_listing_per_location_whatever_is_pending():
    bucket = FakeBucket()
    book = AsyncBook(bucket.list_page, run="r1")
    submit(book, 500)
    book.poll(1.0, 1.0)
    assert len(bucket.calls) == 2, "one call for the output prefix, one for the failure prefix"
    assert {c[1] for c in bucket.calls} == {"out/r1-", "failed/r1-"}, "only this run's keys"


def test_completed_requests_before_the_oldest_pending_one_are_not_listed_again():
    bucket = FakeBucket()
    book = AsyncBook(bucket.list_page, run="r1")
    sent = submit(book, 100, failure=False)
    for _, output, _ in sent[:90]:
        bucket.put(output, 1.0)
    assert len(book.poll(2.0, 2.0)) == 90
    listed = book.keys_listed
    book.poll(3.0, 3.0)
    assert book.keys_listed == listed, "nothing after the oldest pending exists yet: nothing listed"
    assert bucket.calls[-1][2] == "out/r1-0000000090~", "starts after the last completed request's keys"
    bucket.put(sent[95][1], 4.0)
    assert [c.inference_id for c in book.poll(4.0, 4.0)] == [sent[95][0]]
    assert book.keys_listed == listed + 1


def test_full_pages_are_followed_so_nothing_is_missed():
    bucket = FakeBucket(page=7)
    book = AsyncBook(bucket.list_page, run="r1")
    sent = submit(book, 30, failure=False)
    for _, output, _ in sent:
        bucket.put(output, 1.0)
    assert len(book.poll(2.0, 2.0)) == 30 and book.summary()["pending"] == 0
    assert book.list_calls == 5


def test_results_named_otherwise_are_still_found_by_their_exact_location():
    bucket = FakeBucket()
    book = AsyncBook(bucket.list_page, run="r1")
    iid = book.next_id()
    book.submitted(iid, "s3://res/out/5f0c-uuid.out", None, 1.0, 1.0)
    bucket.put("s3://res/out/5f0c-uuid.out", 2.0)
    assert [c.inference_id for c in book.poll(3.0, 3.0)] == [iid]
    assert bucket.calls[-1][1:] == ("out/", ""), "the whole result prefix, without StartAfter"


def test_inputs_are_uploaded_once_per_distinct_payload_and_reused():
    class S3:
        def __init__(self):
            self.objects, self.puts = {}, 0

        def head_object(self, Bucket, Key):
            if (Bucket, Key) not in self.objects:
                raise KeyError(Key)

        def put_object(self, Bucket, Key, Body, ContentType):
            self.objects[(Bucket, Key)] = Body
            self.puts += 1

    s3 = S3()
    uris = upload_inputs(s3, "exp-bucket", "churn", [b"a", b"b", b"a"], "text/csv")
    assert uris[0] == uris[2] != uris[1] and s3.puts == 2
    assert uris[1] == f"s3://exp-bucket/{input_key('churn', b'b')}"
    upload_inputs(s3, "exp-bucket", "churn", [b"a", b"b"], "text/csv")
    assert s3.puts == 2, "a rerun reuses the objects"
