"""The text-generation runtime: TGI's /invocations contract, continuous batching, the token log.

The contract's expectations come from TGI's router (server.rs, lib.rs, validation.rs): event shape, the
last event's generated_text and details, 422 validation documents, errors as events when streaming.
One real runtime process (`python -m sme.local.runtime`, gunicorn) serves the HTTP tests.
"""

from __future__ import annotations

import http.client
import json
import threading
import time

import pytest

from sme.local.runtime import start_runtime
from sme.local.runtime.textgen import TextGenerationModel
from sme.local.runtime.textgen_model import WordModel

JSON = {"Content-Type": "application/json"}


@pytest.fixture(scope="module")
def runtime(tmp_path_factory):
    log = tmp_path_factory.mktemp("tokens") / "tokens.jsonl"
    rt = start_runtime(None, port=0, env={"HF_MODEL_ID": "sme/alice", "SME_TOKEN_LOG": str(log),
                                          "MAX_CONCURRENT_REQUESTS": "4"})
    try:
        rt.wait_ready(30)
        yield rt, log
    finally:
        rt.stop()


def post(port: int, body: dict, headers: dict | None = None) -> tuple[int, str, bytes, list[float]]:
    """(status, content type, body, arrival time of each chunk); chunks are read as they come."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    conn.request("POST", "/invocations", json.dumps(body), {**JSON, **(headers or {})})
    reply = conn.getresponse()
    chunks, arrivals = [], []
    while True:
        chunk = reply.read1(65536)
        if not chunk:
            break
        chunks.append(chunk)
        arrivals.append(time.time())
    conn.close()
    return reply.status, reply.getheader("Content-Type"), b"".join(chunks), arrivals


def events(body: bytes) -> list[dict]:
    assert body.endswith(b"\n\n"), body[-50:]
    return [json.loads(part[len(b"data:"):]) for part in body.split(b"\n\n") if part]


def test_a_stream_sends_one_tgi_event_per_token_and_the_last_carries_the_text_and_details(runtime):
    rt, _ = runtime
    status, content_type, body, _ = post(rt.port, {"inputs": "Alice was", "stream": True,
                                                   "parameters": {"max_new_tokens": 8, "details": True}})
    assert status == 200 and content_type == "text/event-stream"
    stream = events(body)
    assert [e["index"] for e in stream] == list(range(1, 9))
    assert all(set(e) == {"index", "token", "generated_text", "details"} for e in stream)
    assert all(set(e["token"]) == {"id", "text", "logprob", "special"} for e in stream)
    assert all(e["generated_text"] is None and e["details"] is None for e in stream[:-1])
    texts = "".join(e["token"]["text"] for e in stream if not e["token"]["special"])
    assert stream[-1]["generated_text"] == "Alice was" + texts, "return_full_text is TGI's default here"
    assert stream[-1]["details"] == {"finish_reason": "length", "generated_tokens": 8, "seed": None,
                                     "input_length": 2}


def test_a_whole_answer_is_a_list_of_one_generation_with_its_tokens_when_details_are_asked(runtime):
    rt, _ = runtime
    status, content_type, body, _ = post(rt.port, {"inputs": "The Queen", "parameters": {
        "max_new_tokens": 5, "details": True, "return_full_text": False, "do_sample": True, "seed": 7}})
    assert status == 200 and content_type == "application/json"
    [answer] = json.loads(body)
    details = answer["details"]
    assert details["finish_reason"] in ("length", "eos_token") and details["seed"] == 7
    assert details["generated_tokens"] == len(details["tokens"]) <= 5
    assert answer["generated_text"] == "".join(t["text"] for t in details["tokens"] if not t["special"])
    again = json.loads(post(rt.port, {"inputs": "The Queen", "parameters": {
        "max_new_tokens": 5, "details": True, "return_full_text": False, "do_sample": True, "seed": 7}})[2])
    assert again[0]["generated_text"] == answer["generated_text"], "the same seed samples the same tokens"


def test_bad_parameters_are_422_documents_or_an_error_event_when_streaming(runtime):
    rt, _ = runtime
    status, content_type, body, _ = post(rt.port, {"inputs": "x", "parameters": {"temperature": 0}})
    assert (status, content_type) == (422, "application/json")
    assert json.loads(body) == {"error": "Input validation error: `temperature` must be strictly positive",
                                "error_type": "validation"}
    status, _, body, _ = post(rt.port, {"inputs": "x", "stream": True, "parameters": {"top_p": 1.5}})
    assert status == 200, "TGI has answered 200 before it validates a stream"
    assert events(body) == [{"error": "Input validation error: `top_p` must be > 0.0 and < 1.0",
                             "error_type": "validation"}]
    assert post(rt.port, {"inputs": 3})[0] == 422
    conn = http.client.HTTPConnection("127.0.0.1", rt.port, timeout=10)
    for body, content_type, expected in ((b"{not json", "application/json", 400), (b"{}", "text/plain", 415)):
        conn.request("POST", "/invocations", body, {"Content-Type": content_type})
        reply = conn.getresponse()
        reason = reply.read().decode()
        assert reply.status == expected, reason


def test_tokens_arrive_as_they_are_made_and_the_token_log_says_when_each_was_sent(runtime):
    rt, log = runtime
    status, _, body, arrivals = post(rt.port, {"inputs": "Alice", "stream": True,
                                               "parameters": {"max_new_tokens": 12}},
                                     {"X-Amzn-SageMaker-Custom-Attributes": "token-log-test"})
    assert status == 200 and len(events(body)) == 12
    assert len(arrivals) >= 10, "the events came in separate chunks, not one buffered reply"
    assert arrivals[-1] - arrivals[0] >= 0.1, "12 tokens at >= 12 ms a step take over 100 ms"
    [record] = [json.loads(line) for line in log.read_text().splitlines()
                if json.loads(line)["request_id"] == "token-log-test"]
    assert record["tokens"] == 12 and record["stream"] is True and record["finish_reason"] == "length"
    sent = record["sent_at"]
    assert sent == sorted(sent) and sent[0] >= record["received_at"]
    assert abs(sent[-1] - arrivals[-1]) < 0.05, "the last token was received when the runtime says it sent it"


def test_past_max_concurrent_requests_the_runtime_answers_429_overloaded(runtime):
    rt, _ = runtime
    # greedy from "Alice" runs 26 tokens (over 300 ms) to its end of sequence
    streams = [threading.Thread(target=post, args=(rt.port, {"inputs": "Alice", "stream": True}))
               for _ in range(4)]
    for thread in streams:
        thread.start()
    time.sleep(0.1)
    status, _, body, _ = post(rt.port, {"inputs": "a", "parameters": {"max_new_tokens": 1}})
    for thread in streams:
        thread.join()
    assert (status, json.loads(body)) == (429, {"error": "Model is overloaded", "error_type": "overloaded"})


def test_concurrent_sequences_share_decoding_steps():
    model = TextGenerationModel({"SME_LLM_STEP_MS": "1"})
    body = json.dumps({"inputs": "Alice", "stream": True, "parameters": {"max_new_tokens": 20}}).encode()
    streams = [model.invoke(body, "application/json", None)[0] for _ in range(6)]
    started = model.loop.steps
    counts = []
    threads = [threading.Thread(target=lambda s=s: counts.append(len(list(s)))) for s in streams]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert counts == [20] * 6
    assert model.loop.steps - started <= 25, "120 tokens in about 20 steps: one step decodes every sequence"


def test_the_generator_learns_the_shipped_text():
    model = WordModel.train()
    assert model.size > 3000, "every word of the text is a token"
    assert model.text_of(model.encode("Alice was beginning to get very tired")) == "Alice was beginning to get very tired"
    following = model.log_probs([model.encode("said the March")])[0]
    assert model.words[int(following.argmax())] == " Hare", "the text's own bigram"
