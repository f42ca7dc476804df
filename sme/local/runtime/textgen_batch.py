"""Continuous batching: one decode loop steps every active sequence together, as TGI's and vLLM's do.

Each step (on the loop's own thread) first prefills the sequences that arrived since the last one (one
row per prompt token: a prompt's cost grows with its length, and it delays that step for everyone, as
prefill does in TGI) and then decodes one token for every active sequence, in one matrix product
(``WordModel.log_probs``). A token goes to its request's queue the moment it is chosen; a finished
sequence leaves the batch at once and a new one joins at the next step.

A step takes at least ``step_floor_s`` (``SME_LLM_STEP_MS``, 12 ms by default): what one decoding step
of a real model costs whatever the batch, reading every weight once from memory; that part is waited,
not computed, so that a laptop running a one-user test is not kept busy. Above it the arithmetic grows
with the sequences in the step, so a concurrency sweep meets a knee: tokens per second stop rising and
inter-token latency starts to.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from dataclasses import dataclass, field

import numpy as np

from sme.local.runtime.textgen_model import EOS, Choice, Sampling, WordModel

log = logging.getLogger("sme.runtime")
FINISHED = None  # put on a sequence's queue after its last token


class Overloaded(Exception):
    """More requests in flight than MAX_CONCURRENT_REQUESTS: TGI answers 429 "Model is overloaded"."""


@dataclass(eq=False)
class Sequence:
    prompt: list[int]
    max_new_tokens: int
    sampling: Sampling
    stop: tuple[str, ...] = ()
    seed: int | None = None
    want_prefill: bool = False
    tokens: list[Choice] = field(default_factory=list)
    prefill: list[dict] = field(default_factory=list)
    finish_reason: str = ""
    out: "queue.SimpleQueue[Choice | None]" = field(default_factory=queue.SimpleQueue)
    text: str = ""  # what has been generated so far, special tokens left out
    cancelled: bool = False  # its client went away: it leaves the batch at the next step

    def __post_init__(self) -> None:
        self.rng = np.random.default_rng(self.seed) if self.sampling.do_sample else None
        self.context = list(self.prompt)


class DecodeLoop:
    def __init__(self, model: WordModel, step_floor_s: float, max_concurrent: int):
        self.model = model
        self.step_floor_s = step_floor_s
        self.max_concurrent = max_concurrent
        self._arrivals: "queue.SimpleQueue[Sequence]" = queue.SimpleQueue()
        self._in_flight = 0
        self._lock = threading.Lock()
        self.steps = 0
        threading.Thread(target=self._run, name="sme-decode-loop", daemon=True).start()

    def submit(self, sequence: Sequence) -> Sequence:
        with self._lock:
            if self._in_flight >= self.max_concurrent:
                raise Overloaded("Model is overloaded")
            self._in_flight += 1
        self._arrivals.put(sequence)
        return sequence

    def _run(self) -> None:
        active: list[Sequence] = []
        while True:
            if not active:
                active.append(self._arrivals.get())  # idle: wait for a request
            started = time.perf_counter()
            while True:  # continuous batching: whoever arrived joins this step
                try:
                    active.append(self._arrivals.get_nowait())
                except queue.Empty:
                    break
            try:
                self._step(active)
            except Exception:  # noqa: BLE001 - a bug must end the requests, not hang them
                log.exception("the decode loop failed; ending %d requests", len(active))
                for sequence in active:
                    sequence.finish_reason = "error"
                    self._finish(sequence)
                active = []
                continue
            for s in active:
                if s.cancelled and not s.finish_reason:
                    s.finish_reason = "cancelled"
                    self._finish(s)
            active = [s for s in active if not s.finish_reason]
            self.steps += 1
            rest = self.step_floor_s - (time.perf_counter() - started)
            if rest > 0:
                time.sleep(rest)

    def _step(self, active: list[Sequence]) -> None:
        """Prefill who just arrived (a row per prompt position, so a long prompt costs more), then one
        token for everyone, all in one product."""
        prefixes = [(s, [s.prompt[max(0, i - 2):i + 1] for i in range(len(s.prompt) - 1)])
                    for s in active if not s.tokens]
        rows = self.model.log_probs([c for _, cs in prefixes for c in cs] + [s.context for s in active])
        first = 0
        for s, contexts in prefixes:
            if s.want_prefill and s.prompt:
                s.prefill = self._prefill_tokens(s, rows[first:first + len(contexts)])
            first += len(contexts)
        for s, row in zip(active, rows[first:]):
            self._emit(s, self.model.choose(self.model.distribution(row, s.context, s.sampling), s.sampling, s.rng))

    def _prefill_tokens(self, s: Sequence, rows: np.ndarray) -> list[dict]:
        words = self.model.words
        tokens = [{"id": s.prompt[0], "text": words[s.prompt[0]], "logprob": None}]
        for position, row in enumerate(rows, start=1):
            token = s.prompt[position]
            tokens.append({"id": token, "text": words[token], "logprob": float(row[token])})
        return tokens

    def _emit(self, s: Sequence, choice: Choice) -> None:
        s.tokens.append(choice)
        s.context.append(choice.id)
        if not choice.special:
            s.text += choice.text
        if choice.id == EOS:
            s.finish_reason = "eos_token"
        elif any(s.text.endswith(stop) for stop in s.stop):
            s.finish_reason = "stop_sequence"
        elif len(s.tokens) >= s.max_new_tokens:
            s.finish_reason = "length"
        s.out.put(choice)
        if s.finish_reason:
            self._finish(s)

    def _finish(self, s: Sequence) -> None:
        s.out.put(FINISHED)
        with self._lock:
            self._in_flight -= 1
