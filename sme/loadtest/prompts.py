"""Prompts of chosen lengths, cut from text sme ships: load for an LLM endpoint without a prompt file.

``payload: {prompts: {input_tokens: {mean: 512, stddev: 64}, output_tokens: {mean: 128}}, template: tgi}``
makes ``count`` (default 200) request bodies. Each prompt's length is drawn from a normal distribution
(at least one token) and cut from *Alice's Adventures in Wonderland* (Lewis Carroll, 1865; public domain:
``sme/data/alice.txt``) at a varying place; each asks for its drawn number of output tokens. sme ships no
tokenizer: a prompt of N tokens is N / 1.3 words (a BPE tokenizer makes about 1.3 tokens of an English
word), so the model's own count of input tokens is close, not equal. The same seed gives the same bodies
in every load process.

Templates: ``tgi`` (TGI's and LMI's ``{"inputs", "parameters": {"max_new_tokens", "details": true}, "stream"}``,
with ``details`` so the last event carries the token count) and ``openai`` (a chat completion with
``max_tokens`` and ``stream_options.include_usage``).
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

TEXT = Path(__file__).resolve().parent.parent / "data" / "alice.txt"
WORDS_PER_TOKEN = 1 / 1.3
DEFAULT_COUNT = 200


def prompt_bodies(spec: dict[str, Any], template: str, stream: bool = True, seed: int = 7) -> list[bytes]:
    words = TEXT.read_text(encoding="utf-8").split()
    rng = random.Random(seed)
    inputs, outputs = spec["input_tokens"], spec.get("output_tokens", {"mean": 128})
    bodies = []
    for _ in range(int(spec.get("count", DEFAULT_COUNT))):
        n_in = _draw(rng, inputs)
        n_words = max(1, round(n_in * WORDS_PER_TOKEN))
        start = rng.randrange(0, max(1, len(words) - n_words))
        text = " ".join(words[start:start + n_words])
        bodies.append(json.dumps(_body(template, text, _draw(rng, outputs), stream), separators=(",", ":")).encode())
    return bodies


def _draw(rng: random.Random, dist: dict[str, Any]) -> int:
    return max(1, round(rng.gauss(float(dist["mean"]), float(dist.get("stddev", 0)))))


def _body(template: str, text: str, max_new: int, stream: bool) -> dict[str, Any]:
    if template == "openai":
        return {"messages": [{"role": "user", "content": text}], "max_tokens": max_new, "stream": stream,
                **({"stream_options": {"include_usage": True}} if stream else {})}
    return {"inputs": text, "parameters": {"max_new_tokens": max_new, "details": True}, "stream": stream}
