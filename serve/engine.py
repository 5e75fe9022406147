"""The one generation engine of the service: ``generate``, ``generate_stream`` and ``/v1/completions``
(streamed or not), whichever backend runs the model (no HTTP here).

A ``Generation`` continues one prompt by up to ``max_tokens`` tokens from one seed, in model calls of
at most ``chunk_tokens`` tokens. The first call runs ``serving_default`` on a text prompt (a prompt of
token ids was read by ``read``: its first call is ``resume`` from that state); each later one runs
``resume`` from the state and token counts the previous call returned, so no prefix is read twice
and a chunk costs what the first one costs. The rules:

- **One seed rule**: draw t of a generation is keyed by (seed, t) whatever the chunking (``resume``
  numbers its draws from ``position``): a streamed generation makes exactly the tokens of the same
  generation made in one call.
- **One sent-text rule**: text handed out is never taken back. The end of the text that could be the
  beginning of a stop sequence is held back until a later call decides; so a stop sequence that spans
  two calls still stops, and a streamed text equals the text of the same generation made at once.

Each ``Piece`` carries its tokens (those that begin inside its text) with their log-probabilities,
alternatives and offsets in the completion's text.
"""

from __future__ import annotations

import asyncio
import dataclasses
import secrets
from collections.abc import AsyncIterator

import numpy as np
from fastapi import Request

from tf_zoneout.saved_model import signatures
from tf_zoneout_serve.batching import OverloadedError
from tf_zoneout_serve.errors import ApiError
from tf_zoneout_serve.registry import LoadedModel
from tf_zoneout_serve.schemas import MAX_SEED
from tf_zoneout_serve.settings import Settings


def new_seed() -> int:
    """A random seed for a request that gives none."""
    return secrets.randbelow(MAX_SEED + 1)


async def run_signature(
    model: LoadedModel, signature: str, inputs: dict, request: Request, settings: Settings
) -> dict:
    """The signature's outputs for one request's rows, through the model's batcher: 503 with
    Retry-After on overload; gives up (and frees the queue slot) when the client disconnects."""
    task = asyncio.ensure_future(model.batchers[signature].submit(inputs))
    try:
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                break
            if await request.is_disconnected():
                raise ApiError(499, "client closed the request", "client_closed")
    except BaseException:  # a disconnection, or this call was cancelled (a stop made it needless)
        task.cancel()  # the batcher drops cancelled requests
        raise
    try:
        return task.result()
    except OverloadedError as error:
        raise ApiError(
            503,
            f"model {model.name} is overloaded ({error}); retry later",
            "overloaded",
            {"Retry-After": str(settings.retry_after_seconds)},
        ) from None


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to (not including) the earliest stop sequence, and whether one was found."""
    positions = [text.find(s) for s in stop if s and s in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


def held_back(text: str, stop: list[str]) -> int:
    """How many characters at the end of ``text`` could be the beginning of a stop sequence."""
    longest = 0
    for s in stop:
        for size in range(min(len(s) - 1, len(text)), longest, -1):
            if text.endswith(s[:size]):
                longest = size
                break
    return longest


def token_offsets(text: str, tokens: list[str], start: int = 0) -> list[int]:
    """Where each token begins in ``text``, searching forward from ``start`` (a token the text does
    not hold, e.g. an end-of-line shown as a newline the text lacks, gets the current position)."""
    offsets, position = [], start
    for token in tokens:
        found = text.find(token, position) if token else -1
        at = found if found >= 0 else position
        offsets.append(at)
        position = at + len(token) if found >= 0 else position
    return offsets


def _texts(row) -> list[str]:
    return [t.decode("utf-8", "replace") for t in row]


@dataclasses.dataclass
class Tokens:
    """Tokens of a text with what the model said of them.

    Attributes:
        tokens: each token's text.
        logprobs: each token's log-probability, nats.
        top: each position's likeliest alternatives, [(token, logprob), ...] most likely first.
        offsets: where each token begins in the text they belong to.
    """

    tokens: list[str] = dataclasses.field(default_factory=list)
    logprobs: list[float | None] = dataclasses.field(default_factory=list)
    top: list[list[tuple[str, float]] | None] = dataclasses.field(default_factory=list)
    offsets: list[int] = dataclasses.field(default_factory=list)

    @classmethod
    def of_row(
        cls, outputs: dict, count: int, text: str, start: int = 0, logprobs=None, alternatives: bool = True
    ) -> Tokens:
        """The first ``count`` tokens of row 0 of a ``serving_default``/``resume``/``score``/``read``
        output (``logprobs``: the log-probabilities to use instead of ``token_logprobs``), placed in
        ``text`` from ``start`` on; ``alternatives`` False leaves ``top`` empty lists (nobody asked
        for them)."""
        tokens = _texts(outputs["tokens"][0][:count])
        values = [float(v) for v in (outputs["token_logprobs"][0][:count] if logprobs is None else logprobs)]
        if alternatives:
            rows = zip(outputs["top_tokens"][0][:count], outputs["top_logprobs"][0][:count])
            top = [list(zip(_texts(names), (float(v) for v in row))) for names, row in rows]
        else:
            top = [[] for _ in tokens]
        return cls(tokens, values, top, token_offsets(text, tokens, start))

    def without_first_value(self) -> Tokens:
        """These tokens with no log-probability or alternatives for the first (a prompt of token ids:
        nothing precedes its first token, as OpenAI's echo reports it)."""
        if not self.tokens:
            return self
        return Tokens(self.tokens, [None, *self.logprobs[1:]], [None, *self.top[1:]], self.offsets)

    def extend(self, other: Tokens) -> None:
        self.tokens += other.tokens
        self.logprobs += other.logprobs
        self.top += other.top
        self.offsets += other.offsets

    def split_at(self, end: int) -> tuple[Tokens, Tokens]:
        """(the tokens that begin before ``end``, the rest); offsets never decrease."""
        cut = next((i for i, o in enumerate(self.offsets) if o >= end), len(self.offsets))
        fields = (self.tokens, self.logprobs, self.top, self.offsets)
        return Tokens(*(f[:cut] for f in fields)), Tokens(*(f[cut:] for f in fields))


def score_tokens(outputs: dict, text: str) -> Tokens:
    """The tokens of one ``score`` row (a prompt echoed by completions): the log-probabilities are the
    score route's surprisals in nats (``-bits * ln 2``), the same numbers ``/score`` reports."""
    count = int(outputs["num_tokens"][0])
    bits = np.asarray(outputs["token_surprisal"][0][:count], np.float64)
    return Tokens.of_row(outputs, count, text, logprobs=list(-bits * np.log(2.0)))


@dataclasses.dataclass
class Piece:
    """What one model call adds to a generation.

    Attributes:
        text: the new text (never taken back later).
        tokens: the tokens beginning in it (offsets in the whole completion's text).
        finish_reason: None while the generation goes on; then "stop" or "length".
    """

    text: str
    tokens: Tokens
    finish_reason: str | None = None


@dataclasses.dataclass(frozen=True)
class Sampling:
    """How tokens are drawn: temperature (<= 0: greedy), top_k (0: off), top_p (1: off), OpenAI's
    frequency and presence penalties (0: off), and a bias added to the logits by token id ([V], or
    None)."""

    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 1.0
    frequency_penalty: float = 0.0
    presence_penalty: float = 0.0
    logit_bias: np.ndarray | None = None

    def inputs(self, max_new_tokens: int, seed: int) -> dict:
        """The sampling arguments of ``signatures.generate_inputs`` and ``resume_inputs``."""
        return dict(max_new_tokens=max_new_tokens, seed=seed, **dataclasses.asdict(self))


@dataclasses.dataclass(frozen=True)
class Prompt:
    """What a generation continues: a ``text`` (``serving_default`` reads it after the start token), or
    token ids that ``read`` has read: their ``state`` ([1, S]) and count."""

    text: str = ""
    state: np.ndarray | None = None
    num_tokens: int = 0


async def read_ids(model: LoadedModel, ids: list[int], request: Request, settings: Settings) -> dict:
    """``read``'s outputs (row 0) for one prompt of token ids: 400 naming an id outside the vocabulary."""
    vocab_size = int(model.metadata["vocab_size"])
    outside = [i for i in ids if i >= vocab_size]
    if outside:
        raise ApiError(
            400,
            f"token id {outside[0]} is outside model {model.name}'s vocabulary (ids 0 to {vocab_size - 1}; "
            "POST /tokenize gives a text's ids)",
            "invalid_token_id",
            param="prompt",
        )
    return await run_signature(model, signatures.READ.key, signatures.read_inputs([ids]), request, settings)


def read_tokens(outputs: dict, count: int) -> tuple[str, Tokens]:
    """A ``read`` row of ``count`` token ids as an echoed prompt: its text and tokens (the first
    without a value)."""
    text = outputs["text"][0].decode("utf-8", "replace")
    return text, Tokens.of_row(outputs, count, text).without_first_value()


class Generation:
    """One prompt continued by up to ``max_tokens`` tokens (see the module docstring).

    Args:
        model: a language model.
        request: the HTTP request (its disconnection cancels the model calls).
        settings: the service's settings.
        prompt: the text, or the state after the token ids, to continue.
        sampling: how tokens are drawn.
        max_tokens: the most tokens to make.
        seed: the generation's seed.
        stop: stop sequences (the text ends before the first).
        chunk_tokens: the most tokens per model call (None: all in one call).
        alternatives: keep each token's likeliest alternatives (completions' ``logprobs``).

    After the last piece: ``text``, ``num_tokens`` (the tokens kept), ``logprob`` and ``made`` (of
    every token made), ``num_unknown`` and ``prompt_tokens`` (of the prompt) and ``finish_reason``.

    The next model call starts as soon as a call returns its state, before this call's text is
    read, checked for stop sequences and sent, so that work overlaps the model's (a call a stop
    sequence makes needless is cancelled).
    """

    def __init__(
        self,
        model: LoadedModel,
        request: Request,
        settings: Settings,
        prompt: Prompt,
        sampling: Sampling,
        max_tokens: int,
        seed: int,
        stop: list[str],
        chunk_tokens: int | None = None,
        alternatives: bool = False,
    ):
        self.model, self.request, self.settings = model, request, settings
        self.prompt, self.sampling, self.max_tokens, self.seed = prompt, sampling, max_tokens, seed
        self.stop = [s for s in stop if s]
        self.chunk_tokens = chunk_tokens or max(max_tokens, 1)
        self.alternatives = alternatives
        self.text, self.num_tokens, self.logprob, self.made = "", 0, 0.0, 0
        self.num_unknown, self.prompt_tokens = 0, prompt.num_tokens
        self.finish_reason: str | None = None
        self._next: asyncio.Future | None = None  # the next model call, started ahead

    async def _call(self, last: dict | None, position: int) -> dict:
        """One model call: ``serving_default`` on a text prompt (``last`` None), else ``resume`` from
        the last call's state and counts (or the read prompt's state)."""
        sampling = self.sampling.inputs(min(self.chunk_tokens, self.max_tokens - position), self.seed)
        if last is None and self.prompt.state is None:
            key, inputs = signatures.GENERATE.key, signatures.generate_inputs([self.prompt.text], **sampling)
        else:
            state, counts = (
                (self.prompt.state, None) if last is None else (last["state"], last["token_counts"])
            )
            key, inputs = signatures.RESUME.key, signatures.resume_inputs(state, position, counts, **sampling)
        outputs = await run_signature(self.model, key, inputs, self.request, self.settings)
        if key == signatures.GENERATE.key:
            self.num_unknown = int(outputs["num_unknown"][0])
            self.prompt_tokens = int(outputs["num_prompt_tokens"][0])
        return outputs

    async def first_call(self) -> None:
        """Make the first model call now (a route calls this before its response starts, so that an
        overloaded model still answers a clean 503)."""
        if self._next is None and self.max_tokens > 0:
            outputs = await self._call(None, 0)
            self._next = asyncio.get_running_loop().create_future()
            self._next.set_result(outputs)

    @property
    def score(self) -> float:
        """The log-probability per token made (``best_of`` keeps the highest)."""
        return self.logprob / max(self.made, 1)

    async def pieces(self) -> AsyncIterator[Piece]:
        """The generation, a piece per model call (the last one has the ``finish_reason``)."""
        if self.max_tokens <= 0:
            self.finish_reason = "length"
            yield Piece("", Tokens(), "length")
            return
        whole, pending, sent, produced = "", Tokens(), 0, 0  # pending: the tokens not handed out yet
        self._next = self._next or asyncio.ensure_future(self._call(None, 0))
        try:
            while True:
                outputs = await self._next
                made = int(outputs["num_tokens"][0])
                produced += made
                self.made = produced
                more = made > 0 and produced < self.max_tokens
                self._next = asyncio.ensure_future(self._call(outputs, produced)) if more else None
                chunk = outputs["text"][0].decode("utf-8", "replace")
                whole += chunk
                start = len(whole) - len(chunk)
                pending.extend(Tokens.of_row(outputs, made, whole, start, alternatives=self.alternatives))
                self.logprob += float(outputs["logprob"][0])
                kept, stopped = cut_at_stop(whole, self.stop)
                done = stopped or not more
                end = len(kept) if done else len(whole) - held_back(whole, self.stop)
                handed, pending = pending.split_at(end)
                piece = Piece(whole[sent:end], handed)
                self.text, sent = whole[:end], end
                self.num_tokens += len(handed.tokens)
                if done:
                    self.finish_reason = piece.finish_reason = "stop" if stopped else "length"
                    yield piece
                    return
                yield piece
        finally:
            if self._next is not None and not self._next.done():
                self._next.cancel()  # a stop came, or the client went away

    async def run(self) -> Piece:
        """The whole generation as one piece."""
        text, tokens, finish = "", Tokens(), None
        async for piece in self.pieces():
            text += piece.text
            tokens.extend(piece.tokens)
            finish = piece.finish_reason
        return Piece(text, tokens, finish)


def score_body(outputs: dict, level: str | None) -> dict:
    """The ScoreResponse fields from one row of the ``score`` signature's outputs: the numbers of
    ``signatures.score_summary`` and each token with its surprisal."""
    summary = signatures.score_summary(outputs, level)
    count = summary["num_tokens"]
    return {
        **summary,
        "tokens": [t.decode("utf-8", "replace") for t in outputs["tokens"][0][:count]],
        "token_surprisal": [float(v) for v in outputs["token_surprisal"][0][:count]],
    }
