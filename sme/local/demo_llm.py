"""`sme demo --kind llm`: a text-generation endpoint (TGI's contract) streamed under a ladder of users.

The endpoint is deployed as a TGI model is on SageMaker: a TGI image, ``HF_MODEL_ID=/opt/ml/model`` and a
model.tar.gz that SageMaker unpacks there. In the twin the runtime's generator is sme's own small word model,
trained at start-up from the text sme ships, so the archive only describes it (``config.json``). The runtime
logs when it sent each token (``SME_TOKEN_LOG``, a twin setting TGI does not have): the tally reconciles the
load test's counts with that log.
"""

from __future__ import annotations

import io
import json
import tarfile
from pathlib import Path

from sme.local.demo_kinds import TGI_IMAGE, DemoRun, Tally, shown_ms

LADDER_STEPS = 4
USERS_STEP = 2  # 2, 4, 6, 8 users
TOKEN_LOG = ".local/tokens.jsonl"


def llm_prepare(run: DemoRun) -> None:
    run.console.info("2/6 an LLM endpoint: a TGI image serving sme's small word model, answers streamed")
    model_tar = run.out / "model.tar.gz"
    _write_model_tar(model_tar)
    run.console.info(f"3/6 packed the model description for TGI's /opt/ml/model: {model_tar}")
    log = run.out / TOKEN_LOG
    log.parent.mkdir(parents=True, exist_ok=True)
    log.write_text("")
    (run.out / "sme.yaml").write_text(f"""# written by `sme demo --kind llm` (on AWS: examples/llm/sme.yaml)
name: {run.name}
region: us-east-1
model:
  image: {TGI_IMAGE}
  model_data: {model_tar}
  role: create
  environment:
    HF_MODEL_ID: /opt/ml/model           # TGI loads the model SageMaker unpacked there
    MAX_INPUT_TOKENS: "1024"
    MAX_TOTAL_TOKENS: "2048"
    MAX_CONCURRENT_REQUESTS: "32"
    SME_TOKEN_LOG: {log}   # the twin's runtime notes each token it sends (not a TGI setting)
endpoint:
  variants:
    - {{name: AllTraffic, instance_type: ml.g4dn.xlarge, count: 1}}
""")
    every = max(5, round(run.load_seconds / LADDER_STEPS))
    top = USERS_STEP * LADDER_STEPS
    (run.out / "load.yaml").write_text(f"""# written by `sme demo --kind llm`: a concurrency ladder of streamed answers
target: {{endpoint: {run.name}, stream: true}}     # InvokeEndpointWithResponseStream
payload:
  prompts: {{input_tokens: {{mean: 64, stddev: 16}}, output_tokens: {{mean: 32}}}}
  template: tgi
stages:
  - steps: {{kind: users, start: {USERS_STEP}, step: {USERS_STEP}, every: {every}s, max: {top}, spawn_rate: 20}}
""")


def _write_model_tar(path: Path) -> None:
    config = {"model_type": "sme-word-model", "trained_on": "sme/data/alice.txt",
              "note": "the twin's runtime trains this small word model at start-up; on AWS this archive holds "
                      "the model's Hugging Face files (config.json, tokenizer, *.safetensors)"}
    data = json.dumps(config, indent=2).encode()
    info = tarfile.TarInfo("config.json")
    info.size, info.mode = len(data), 0o644
    with tarfile.open(path, "w:gz") as tar:
        tar.addfile(info, io.BytesIO(data))


def _logged(run: DemoRun) -> dict[str, int]:
    """The runtime's own count: streams it answered to the end, and the tokens it sent in them."""
    streams = tokens = 0
    for line in (run.out / TOKEN_LOG).read_text().splitlines():
        record = json.loads(line)
        if record.get("stream") and record.get("tokens"):
            streams += 1
            tokens += int(record["tokens"])
    return {"streams_with_tokens": streams, "tokens": tokens}


def llm_tally(run: DemoRun) -> Tally:
    s = run.summary()
    stream = s.get("stream") or {}
    try:
        twin = _logged(run)
    except (OSError, ValueError):
        twin = {}
    tokens = stream.get("output_tokens")
    lines = [
        f"time to first token p99 {shown_ms(stream.get('ttft_ms'), 'p99')}, inter-token latency p99 "
        f"{shown_ms(stream.get('itl_ms'), 'p99')}, {stream.get('output_tokens_per_s') or 0:,.0f} output tokens/s",
        f"tokens: {tokens} in {stream.get('requests_with_tokens')} streamed answers; the model sent "
        f"{twin.get('tokens')} in {twin.get('streams_with_tokens')}"
        + ("" if tokens == twin.get("tokens") else "  (these differ: see summary.json `stream`)"),
    ]
    for stage in s.get("stages") or []:
        st = stage.get("stream") or {}
        lines.append(f"  {stage.get('users')} users: {st.get('output_tokens_per_s') or 0:,.0f} tokens/s, "
                     f"time to first token p99 {shown_ms(st.get('ttft_ms'), 'p99')}, "
                     f"inter-token p99 {shown_ms(st.get('itl_ms'), 'p99')}")
    return Tally(lines, {"stream": stream, "requests": s.get("requests"), "twin": twin})
