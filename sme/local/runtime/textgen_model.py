"""The text generator behind the local LLM runtime: a word-level language model trained at start-up.

It learns from ``sme/data/alice.txt`` (Lewis Carroll, *Alice's Adventures in Wonderland*, 1865: public
domain; the Project Gutenberg text without its licence header), about 144 kB, in well under a second:

- tokens are words and punctuation marks with their leading space (" Alice", " said", ","), as a BPE
  tokenizer's are, so that concatenating the tokens' texts gives the text; a blank line ends a paragraph
  and becomes the end-of-sequence token ``</s>``;
- the next token's log-probabilities are a product of experts over the last ``CONTEXT`` tokens: a dense
  bigram table ``table[v, w] = log P(w | v)``, weighted by recency. One decoding step computes them for
  every sequence in the batch as one matrix product ``context (B x V) @ table (V x V)``, so a step costs
  arithmetic in proportion to the number of sequences, as a decoder's layers do (a gather of rows would
  give the same numbers for less work: the product is kept for its cost, which is what the runtime
  stands for);
- where the last two tokens were seen together in the text, the exact trigram distribution is mixed in
  (weight ``TRIGRAM_WEIGHT``), which keeps phrases intact.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

TEXT = Path(__file__).resolve().parents[2] / "data" / "alice.txt"  # (shared with sme.loadtest.prompts)
EOS, UNK = 0, 1
SPECIAL = ("</s>", "<unk>")
TOKEN = re.compile(r" ?[A-Za-z]+(?:'[A-Za-z]+)*| ?\d+| ?[^\sA-Za-z\d]")
CONTEXT = (1.0, 0.3, 0.1)  # weight of the last, second-to-last and third-to-last token's expert
TRIGRAM_WEIGHT = 0.7
SMOOTHING = 0.01  # add-k counts, so that every token stays possible


@dataclass
class Choice:
    """One sampled token: its id, text, log-probability under the distribution it was drawn from."""

    id: int
    text: str
    logprob: float

    @property
    def special(self) -> bool:
        return self.id < len(SPECIAL)


class WordModel:
    def __init__(self, words: list[str], table: np.ndarray, trigrams: dict[int, tuple[np.ndarray, np.ndarray]]):
        self.words = words
        self.ids = {w: i for i, w in enumerate(words)}
        self.table = table  # (V, V) float32 log P(next | previous)
        self.trigrams = trigrams  # previous * V + last -> (next ids, counts)

    @property
    def size(self) -> int:
        return len(self.words)

    @classmethod
    def train(cls, text: str | None = None) -> "WordModel":
        paragraphs = _paragraphs(TEXT.read_text(encoding="utf-8") if text is None else text)
        counts: dict[str, int] = {}
        for tokens in paragraphs:
            for token in tokens:
                counts[token] = counts.get(token, 0) + 1
        words = list(SPECIAL) + sorted(counts, key=lambda w: (-counts[w], w))
        ids = {w: i for i, w in enumerate(words)}
        stream = np.fromiter((i for tokens in paragraphs for i in (*(ids[t] for t in tokens), EOS)), dtype=np.int64)
        stream = np.concatenate(([EOS], stream))  # a paragraph starts after an end of sequence
        return cls(words, _bigram_table(stream, len(words)), _trigrams(stream, len(words)))

    # -- tokens ---------------------------------------------------------------------------------------
    def encode(self, text: str) -> list[int]:
        ids = self.ids
        return [ids.get(token, UNK) for token in TOKEN.findall(re.sub(r"\s+", " ", text))]

    def text_of(self, token_ids: list[int]) -> str:
        """The text of these tokens, special ones left out (as TGI decodes with skip_special_tokens)."""
        return "".join(self.words[i] for i in token_ids if i >= len(SPECIAL))

    # -- the arithmetic of a step ---------------------------------------------------------------------
    def log_probs(self, contexts: list[list[int]]) -> np.ndarray:
        """Log-probabilities of the next token after each context, one row per context: (B, V)."""
        x = np.zeros((len(contexts), self.size), dtype=np.float32)
        for row, context in enumerate(contexts):
            for weight, token in zip(CONTEXT, reversed(context[-len(CONTEXT):] or [EOS])):
                x[row, token if token != UNK else EOS] += weight
        logits = x @ self.table
        logits -= logits.max(axis=1, keepdims=True)
        return logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))

    def distribution(self, log_probs: np.ndarray, context: list[int], sampling: "Sampling") -> np.ndarray:
        """The probabilities to draw the next token from: the bigram experts' and the trigram mixed, then
        temperature, top-k and top-p as TGI's warpers apply them."""
        p = np.exp(log_probs.astype(np.float64))
        if len(context) >= 2:
            seen = self.trigrams.get(context[-2] * self.size + context[-1])
            if seen is not None:
                p *= 1.0 - TRIGRAM_WEIGHT
                p[seen[0]] += TRIGRAM_WEIGHT * seen[1] / seen[1].sum()
        if sampling.temperature != 1.0:
            p = np.power(p, 1.0 / sampling.temperature)
        if sampling.top_k and sampling.top_k < p.size:
            p[p < np.partition(p, -sampling.top_k)[-sampling.top_k]] = 0.0
        if sampling.top_p < 1.0:
            order = np.argsort(-p)
            cumulative = np.cumsum(p[order]) / p.sum()
            p[order[np.searchsorted(cumulative, sampling.top_p) + 1:]] = 0.0
        return p / p.sum()

    def choose(self, p: np.ndarray, sampling: "Sampling", rng: np.random.Generator | None) -> Choice:
        token = int(rng.choice(p.size, p=p)) if rng is not None and sampling.do_sample else int(np.argmax(p))
        return Choice(token, self.words[token], float(np.log(p[token])))


@dataclass(frozen=True)
class Sampling:
    do_sample: bool = False
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0


def _paragraphs(text: str) -> list[list[str]]:
    blocks = (re.sub(r"\s+", " ", block).strip() for block in re.split(r"\n\s*\n", text))
    return [TOKEN.findall(block) for block in blocks if block]


def _bigram_table(stream: np.ndarray, size: int) -> np.ndarray:
    counts = np.full((size, size), SMOOTHING, dtype=np.float32)
    np.add.at(counts, (stream[:-1], stream[1:]), 1.0)
    counts[:, UNK] = 0.0  # never generate <unk>
    counts[EOS, EOS] = 0.0
    return np.log(counts / counts.sum(axis=1, keepdims=True), where=counts > 0,
                  out=np.full_like(counts, -1e4)).astype(np.float32)


def _trigrams(stream: np.ndarray, size: int) -> dict[int, tuple[np.ndarray, np.ndarray]]:
    contexts = stream[:-2] * size + stream[1:-1]
    keys, counts = np.unique(contexts * size + stream[2:], return_counts=True)
    context_of, next_of = keys // size, keys % size
    starts = np.flatnonzero(np.r_[True, context_of[1:] != context_of[:-1]])
    ends = np.r_[starts[1:], keys.size]
    return {int(context_of[s]): (next_of[s:e], counts[s:e].astype(np.float64))
            for s, e in zip(starts, ends) if counts[s:e].sum() >= 2}
