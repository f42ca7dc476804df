"""Reading streamed answers: server-sent events, SageMaker's event-stream frames (decoded by botocore's own
parser, built here from the format's spec), token counts, and the stream numbers a run reports."""

from __future__ import annotations

import json

import pytest

from sme.loadtest.results import stream_numbers
from sme.loadtest.slo import evaluate
from sme.loadtest.stats import Recorder, Tally, error_key
from sme.loadtest.streaming import SseEvents, StreamFailure, StreamReading
from tests.support.httpserver import _frame, _token_event


def tgi_stream(n: int) -> bytes:
    return b"".join(_token_event("tgi", i, n) for i in range(n))


def test_sse_events_come_out_whole_however_the_bytes_are_split():
    data = b": keep-alive\n\nevent: token\ndata: a\n\ndata: b1\ndata: b2\r\n\r\nid: 3\ndata:c\n\n"
    for size in (1, 2, 3, 7, len(data)):
        parser, events = SseEvents(), []
        for i in range(0, len(data), size):
            events += parser.feed(data[i:i + size])
        events += parser.close()
        assert events == [b"a", b"b1\nb2", b"c"], size


def test_a_last_event_without_its_blank_line_and_json_lines_count():
    parser = SseEvents()
    assert parser.feed(b'{"token": {"text": "x"}}\n{"token"') == [b'{"token": {"text": "x"}}']
    assert parser.feed(b': {"text": "y"}}\ndata: z') == [b'{"token": {"text": "y"}}']
    assert parser.close() == [b"z"]


def test_tgi_stream_counts_events_and_takes_the_servers_own_token_count():
    reading = StreamReading("sse", started=10.0)
    stream = tgi_stream(5)
    # arrival times (us): first event at 10.2 s, then 10.25, 10.25 (two events in one chunk), ...
    pieces = stream.split(b"\n\n")[:-1]
    at = [10_200_000, 10_250_000, 10_250_000, 10_400_000, 10_450_000]
    for piece, t in zip(pieces, at):
        reading.feed(piece + b"\n\n", t)
    reading.close(10_500_000)
    assert reading.ttft_ms == pytest.approx(200.0)
    assert list(reading.gaps_us()) == [50_000, 0, 150_000, 50_000]
    assert reading.events == 5 and reading.tokens == 5


def test_openai_usage_gives_the_count_and_done_is_not_a_token():
    events = [{"choices": [{"delta": {"content": "a"}}], "usage": None},
              {"choices": [{"delta": {"content": "b"}}], "usage": None},
              {"choices": [], "usage": {"completion_tokens": 7, "prompt_tokens": 2}}]
    body = b"".join(b"data: " + json.dumps(e).encode() + b"\n\n" for e in events) + b"data: [DONE]\n\n"
    reading = StreamReading("sse", started=0.0)
    reading.feed(body, 1_000_000)
    reading.close(1_000_000)
    assert reading.events == 3 and reading.tokens == 7


def test_event_stream_frames_split_and_joined_are_read_as_the_same_events():
    stream = tgi_stream(4)
    frames = _frame(stream[:10]) + _frame(stream[10:70]) + _frame(stream[70:])
    reading = StreamReading("eventstream", started=0.0)
    for i in range(0, len(frames), 13):  # frames split across reads, several frames in one read
        reading.feed(frames[i:i + 13], 1_000_000 + i * 1000)
    reading.close(2_000_000)
    assert reading.events == 4 and reading.tokens == 4
    assert reading.head == stream[:500]
    # each event timed by the read that completed the frame holding its end (frames of 25 bytes of events,
    # read 97 bytes at a time: an event ends in one read or another)
    from sme.loadtest.streaming import EventStreamFrames

    frames = b"".join(_frame(stream[j:j + 25]) for j in range(0, len(stream), 25))
    reading, frames_read, parser, expected = StreamReading("eventstream", started=0.0), EventStreamFrames(), \
        SseEvents(), []
    reads = [(frames[i:i + 97], 1_000_000 + i * 1000) for i in range(0, len(frames), 97)]
    reading.take([r for r, _ in reads], [t for _, t in reads])
    reading.close(2_000_000)
    for piece, t in reads:
        payload = frames_read.feed(piece)
        expected += [t for _ in (parser.feed(payload) if payload else [])]
    assert reading.times == expected and len(set(expected)) == 4, (reading.times, expected)


def test_an_exception_frame_or_a_tgi_error_event_fails_the_request_by_name():
    import struct
    import zlib

    headers = {":message-type": "exception", ":exception-type": "ModelStreamError",
               ":content-type": "application/json"}
    head = b"".join(bytes([len(k)]) + k.encode() + b"\x07" + struct.pack(">H", len(v)) + v.encode()
                    for k, v in headers.items())
    payload = b'{"Message": "the model broke", "ErrorCode": "ModelStreamError"}'
    prelude = struct.pack(">II", 16 + len(head) + len(payload), len(head))
    msg = prelude + struct.pack(">I", zlib.crc32(prelude)) + head + payload
    msg += struct.pack(">I", zlib.crc32(msg))
    reading = StreamReading("eventstream", started=0.0)
    reading.feed(_frame(_token_event("tgi", 0, 3)), 100_000)
    with pytest.raises(StreamFailure) as err:
        reading.feed(msg, 200_000)
    assert error_key(200, err.value) == "stream:ModelStreamError"
    assert "the model broke" in str(err.value)

    reading = StreamReading("sse", started=0.0)
    with pytest.raises(StreamFailure) as err:
        reading.feed(b'data:{"error":"Request failed during generation: x","error_type":"generation"}\n\n', 100_000)
    assert error_key(200, err.value) == "stream:generation"


def test_a_corrupt_frame_fails_the_request_rather_than_being_skipped():
    frame = bytearray(_frame(b"data: a\n\n"))
    frame[-1] ^= 0xFF  # the message CRC no longer matches
    with pytest.raises(StreamFailure) as err:
        StreamReading("eventstream", started=0.0).feed(bytes(frame), 100_000)
    assert err.value.stream_code == "InvalidEventStream"


def test_stream_numbers_come_from_full_histograms_merged_across_processes():
    """Two processes' recorders, merged: ttft/itl percentiles equal those of all values in one histogram,
    tokens add up; hand-computed truth (values chosen in distinct HDR buckets)."""
    a, b = Recorder(), Recorder()
    ttfts = [100.0, 200.0, 300.0, 400.0, 1000.0]
    for i, ttft in enumerate(ttfts):
        rec = a if i % 2 else b
        rec.record(50.5, ttft + 100, None)
        rec.record_stream(50.5, ttft, [10_000, 20_000] if i < 4 else [90_000], tokens=3)
    tally = Tally()
    tally.add(a.drain(wire=True))
    tally.add(b.drain(wire=False))
    numbers = stream_numbers(tally.whole, duration_s=2.0)
    assert numbers["ttft_ms"]["p50"] == pytest.approx(300.0, rel=1e-3)
    assert numbers["ttft_ms"]["max"] == pytest.approx(1000.0, rel=1e-3)
    assert numbers["itl_ms"]["p50"] == pytest.approx(20.0, rel=1e-3)  # sorted 10 x4, 20 x4, 90: the 5th of 9
    assert numbers["itl_ms"]["p90"] == pytest.approx(20.0, rel=1e-3)
    assert numbers["itl_ms"]["p99"] == pytest.approx(90.0, rel=1e-3)
    assert numbers["output_tokens"] == 15 and numbers["output_tokens_per_s"] == 7.5
    assert numbers["requests_with_tokens"] == 5
    assert numbers["e2e_ms"]["p50"] == pytest.approx(400.0, rel=1e-3)
    again = Tally.from_json(json.loads(json.dumps(tally.to_json())))
    assert stream_numbers(again.whole, 2.0) == numbers


def test_stream_slo_keys_pass_and_fail_on_the_stream_numbers():
    stream = {"ttft_ms": {"p50": 120.0, "p99": 800.0}, "itl_ms": {"p50": 20.0, "p99": 61.0},
              "output_tokens_per_s": 40.0}
    verdict = evaluate({"ttft_p99_ms": 800, "itl_p99_ms": 60, "min_output_tokens_per_s": 50}, 10, 0, 0, 1.0,
                       {}, stream)
    assert [c["passed"] for c in verdict["checks"]] == [True, False, False]
    assert not evaluate({"ttft_p50_ms": 1}, 10, 0, 0, 1.0, {}, None)["passed"]  # nothing streamed: fail


def test_generated_prompts_have_the_drawn_lengths_and_the_same_bodies_in_every_process():
    from sme.loadtest.prompts import WORDS_PER_TOKEN, prompt_bodies

    spec = {"input_tokens": {"mean": 130, "stddev": 26}, "output_tokens": {"mean": 64, "stddev": 8}, "count": 400}
    bodies = prompt_bodies(spec, "tgi")
    assert bodies == prompt_bodies(spec, "tgi") and len(bodies) == 400
    docs = [json.loads(b) for b in bodies]
    words = [len(d["inputs"].split()) for d in docs]
    outs = [d["parameters"]["max_new_tokens"] for d in docs]
    mean_words = sum(words) / len(words)
    assert abs(mean_words - 130 * WORDS_PER_TOKEN) < 3  # 100 words: 130 tokens at 1.3 tokens a word
    assert min(words) < 80 < 120 < max(words)  # spread as drawn (stddev 20 words)
    assert abs(sum(outs) / len(outs) - 64) < 2 and all(o >= 1 for o in outs)
    assert all(d["stream"] is True and d["parameters"]["details"] is True for d in docs)
    chat = json.loads(prompt_bodies(spec, "openai", stream=False)[0])
    assert chat["messages"][0]["role"] == "user" and chat["stream"] is False and "stream_options" not in chat


def test_prompts_in_a_load_file_become_the_bodies_and_template_alone_is_refused(tmp_path):
    from sme.errors import ConfigError
    from sme.loadtest.config import load

    path = tmp_path / "lt.yaml"
    path.write_text("target: {url: 'http://127.0.0.1:1/generate', stream: sse}\n"
                    "payload: {prompts: {input_tokens: {mean: 20}, count: 5}, template: tgi}\n"
                    "stages: [{duration: 1, users: 1}]\n")
    lt = load(path)
    assert len(lt.payload.bodies) == 5 and lt.payload.content_type == "application/json"
    path.write_text("target: {url: 'http://127.0.0.1:1/x'}\npayload: {body: x, template: tgi}\n"
                    "stages: [{duration: 1, users: 1}]\n")
    with pytest.raises(ConfigError) as err:
        load(path)
    assert "payload.template" in str(err.value)


def test_adding_counts_to_a_lasting_window_equals_hdrhs_own_record_value():
    import random

    from sme.loadtest.hdr import HIGHEST_US, LOWEST_US, new_histogram
    from sme.loadtest.stats import Window

    rng = random.Random(5)
    values = [LOWEST_US, HIGHEST_US, 2047, 2048, 2049] + [int(rng.lognormvariate(9, 3)) % HIGHEST_US + 1
                                                          for _ in range(20000)]
    truth = new_histogram()
    counts: dict[int, int] = {}
    for v in values:
        truth.record_value(v)
        key = truth.get_lowest_equivalent_value(v)
        counts[key] = counts.get(key, 0) + 1
    w = Window.lasting()
    w.add(counts, len(values))
    assert list(w.dense.counts) == list(truth.counts)
    assert (w.dense.total_count, w.dense.get_min_value(), w.dense.get_max_value()) == \
        (truth.total_count, truth.get_min_value(), truth.get_max_value())


def test_events_read_together_or_apart_count_the_same_whatever_the_path():
    """Whole events several to a read take the counting shortcut; any other cut goes through the parser:
    the numbers are the same (each event timed at the read that completed it)."""
    import random

    rng = random.Random(3)
    stream = tgi_stream(40)
    for _ in range(50):
        cuts = sorted(rng.sample(range(1, len(stream)), rng.randint(1, 30)))
        if rng.random() < 0.5:  # cut only between events: the shortcut's case
            ends = [i + 2 for i in range(len(stream)) if stream[i:i + 2] == b"\n\n"]
            cuts = sorted(rng.sample(ends[:-1], rng.randint(1, 20)))
        pieces = [stream[a:b] for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        reading, parsed = StreamReading("sse", 0.0), SseEvents()
        truth_times: list[float] = []
        for k, piece in enumerate(pieces):
            reading.feed(piece, (k + 1) * 1000)
            truth_times += [(k + 1) * 1000] * len(parsed.feed(piece))
        reading.close((len(pieces) + 1) * 1000)
        assert reading.events == 40 == len(truth_times) and reading.tokens == 40
        assert reading.ttft_ms == truth_times[0] / 1000.0
        assert list(reading.gaps_us()) == [b - a for a, b in zip(truth_times, truth_times[1:])]


def _truth(pieces: list[bytes], at: list[int]) -> tuple[list[int], int | None, str | None]:
    """What each event says, read by the parser alone, event by event: each token event's arrival time, the
    count a final event reports, and the error event's type if one came (reading stops there)."""
    from sme.loadtest import streaming

    parser, times, reported = SseEvents(), [], None
    for piece, t in [*zip(pieces, at), (None, at[-1] + 1 if at else 1)]:
        for data in parser.feed(piece) if piece is not None else parser.close():
            if data.strip() == b"[DONE]":
                continue
            if data.startswith(b'{"error"'):
                return times, reported, streaming._error_type(data)
            if b'_tokens"' in data:
                reported = streaming._token_count(data) or reported
            times.append(t)
    return times, reported, None


def _stream_of_every_shape(rng) -> bytes:
    """TGI and OpenAI events, comments, multi-line and CRLF events, a JSON line, [DONE] and token counts, at
    random; now and then an error event. Half are as servers send them: one kind of token event, the last
    with its count (and OpenAI's [DONE])."""
    n, mixed = rng.randint(1, 60), rng.random() < 0.6
    if not mixed:
        fmt = rng.choice(["tgi", "openai"])
        return b"".join(_token_event(fmt, i, n) for i in range(n)) + (b"data: [DONE]\n\n" if fmt == "openai" else b"")
    parts = []
    for i in range(n):
        kind = rng.random()
        if kind < 0.5:
            parts.append(_token_event("tgi", i, 10**6))
        elif kind < 0.65:
            parts.append(_token_event("openai", i, 10**6))
        elif kind < 0.7:
            parts.append(b": keep-alive\n\n")
        elif kind < 0.75:
            parts.append(b"data: first line\ndata: second (data:{ in the text)\n\n")
        elif kind < 0.8:
            parts.append(b'data: {"token": "crlf"}\r\n\r\n')
        elif kind < 0.85:
            parts.append(b"data: [DONE]\n\n")
        elif kind < 0.87:
            parts.append(_token_event("tgi", 5, 6))  # a final event: details.generated_tokens = 6
        elif kind < 0.9:  # a count that says nothing: an earlier one holds
            parts.append(b'data:{"token": {"text": "z"}, "details": {"generated_tokens": %s}}\n\n'
                         % rng.choice([b"null", b"0", b'"7"']))
        elif kind < 0.93:
            parts.append(b'{"token": {"text": "a JSON line"}}\n')
        elif kind < 0.95:
            parts.append(b'data:{"error":"Request failed during generation: x","error_type":"generation"}\n\n')
        else:
            parts.append(b"event: token\nid: 7\ndata: x\n\n")
    return b"".join(parts)


def test_an_event_is_timed_by_the_read_that_ends_it_even_when_the_reads_match_the_events_in_number():
    """Two reads, two events, but the first read ends one newline short: both events end in the second."""
    reading = StreamReading("sse", 0.0)
    reading.take([bytearray(b"data: x\n"), bytearray(b"\ndata: y\n\n")], [1_000, 2_000])
    reading.close(3_000)
    assert reading.times == [2_000, 2_000]


def test_a_last_token_count_that_says_nothing_leaves_the_earlier_one():
    """A count of null, 0 or a string is no count: the last real one, earlier in the same batch, holds."""
    for nothing in (b"null", b"0", b'"7"'):
        stream = [_token_event("tgi", 0, 9), _token_event("tgi", 8, 9),  # the second says generated_tokens 9
                  _token_event("tgi", 2, 9),
                  b'data:{"token": {"text": "z"}, "details": {"generated_tokens": %s}}\n\n' % nothing]
        reading = StreamReading("sse", 0.0)
        reading.take([bytearray(e) for e in stream], [1, 2, 3, 4])
        reading.close(5)
        assert reading.times == [1, 2, 3, 4] and reading.tokens == 9, nothing


def test_an_event_of_two_lines_cut_between_them_is_one_event_however_the_batch_starts():
    """The parser holds the first line of a two-line event when a read ends there: the next read's
    ``data: b`` line is that event's second, not an event of its own (the counting shortcut must not start
    before the parser has finished the event it holds)."""
    pieces = [bytearray(b"data: one\n\ndata: a\n"), bytearray(b"data: b\n\ndata: two\n\n")]
    truth_times, _, _ = _truth([bytes(p) for p in pieces], [1, 2])
    for batches in ([[0, 1]], [[0], [1]]):
        reading = StreamReading("sse", 0.0)
        for batch in batches:
            reading.take([pieces[i] for i in batch], [i + 1 for i in batch])
        reading.close(3)
        assert reading.times == truth_times == [1, 2, 2], batches


def test_any_stream_cut_anywhere_and_handed_over_in_any_batches_reads_as_the_parser_reads_it():
    """The batch reader's counting shortcut and the parser give the same events at the same times, whatever
    the stream holds, wherever the reads cut it (mid-line, mid-event, between events) and however many reads
    each batch holds."""
    import random

    rng = random.Random(11)
    for _ in range(1500):
        stream = _stream_of_every_shape(rng)
        if rng.random() < 0.3:  # cut only between events: each read whole events
            ends = [i + 2 for i in range(len(stream) - 1) if stream[i:i + 2] == b"\n\n"]
            cuts = sorted(set(rng.sample(ends, min(len(ends), rng.randint(0, 40)))) - {len(stream)})
        else:
            cuts = sorted(set(rng.sample(range(1, len(stream)), min(len(stream) - 1, rng.randint(0, 80)))))
        pieces = [bytearray(stream[a:b]) for a, b in zip([0, *cuts], [*cuts, len(stream)])]
        at = sorted(rng.sample(range(1, 10**7), len(pieces)))
        truth_times, reported, error = _truth([bytes(p) for p in pieces], at)
        reading = StreamReading("sse", 0.0)
        k = 0
        try:
            while k < len(pieces):
                m = rng.randint(1, 40)
                reading.take(pieces[k:k + m], at[k:k + m])
                k += m
            reading.close(at[-1] + 1)
        except StreamFailure as exc:
            assert error is not None and exc.stream_code == error, stream
        else:
            assert error is None, stream
        if error is None:
            assert reading.times == truth_times, stream
            assert reading.tokens == (reported if reported is not None else len(truth_times))
            assert reading.head == stream[:500]
        else:  # the events before the error are counted as they came (the request fails: none is recorded)
            assert reading.times[:len(truth_times)] == truth_times


@pytest.mark.parametrize("doc", [
    {"token": {"id": 1, "text": "x"}, "generated_text": "abc", "details": {"finish_reason": "length",
                                                                         "generated_tokens": 32, "seed": None}},
    # the generated text quotes the keys: escaped inside a JSON string, they are not the document's keys
    {"generated_text": 'say "details":{"generated_tokens":99}', "details": {"generated_tokens": 4}},
    {"generated_text": "x", "details": {"finish_reason": "eos_token", "generated_tokens": 7}, "usage": None},
    {"details": {"prefill": [{"id": 1}], "generated_tokens": 3}},  # a nested object before the key
    {"details": {"finish_reason": "length"}, "generated_tokens": 5},  # the key outside details: not a count
    {"details": None, "usage": {"completion_tokens": 9}},
    {"details": {"generated_tokens": "12"}},  # not a number: not a count
    {"generated_text": "x", "details": {"generated_tokens": 2},
     "best_of_sequences": [{"details": {"generated_tokens": 8}}]},
])
def test_the_final_events_count_is_the_one_its_json_says(doc):
    """The count taken is the one the document says, escaped keys in the text and nested objects included."""
    from sme.loadtest import streaming

    for data in (json.dumps(doc).encode(), json.dumps(doc, separators=(",", ":")).encode()):
        parsed = json.loads(data)
        details, usage = parsed.get("details"), parsed.get("usage")
        expected = (details["generated_tokens"] if isinstance(details, dict)
                    and isinstance(details.get("generated_tokens"), int) else
                    usage["completion_tokens"] if isinstance(usage, dict) else None)
        assert streaming._token_count(data) == expected, data
