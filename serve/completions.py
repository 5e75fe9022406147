"""OpenAI completions from the language models' signatures (no HTTP here).

A choice is one row of ``serving_default`` (the continuation, its tokens, their log-probabilities
and the likeliest alternatives); with ``echo``, the prompt's tokens and log-probabilities come from
``score``, so echo-scoring gives exactly what ``/score`` gives. ``text_offset`` is each token's
character position in the choice's text.
"""

from __future__ import annotations

import math

import numpy as np

from tf_zoneout_serve.generation import cut_at_stop


def _texts(row) -> list[str]:
    return [t.decode("utf-8", "replace") for t in row]


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


def _top(tokens_row, logprobs_row, count: int, k: int) -> list[dict[str, float]]:
    """The ``k`` likeliest alternatives at each of ``count`` positions, as {token: logprob}."""
    found = []
    for tokens, values in zip(tokens_row[:count], logprobs_row[:count]):
        alternatives: dict[str, float] = {}
        for token, value in zip(_texts(tokens[:k]), values[:k]):
            alternatives.setdefault(token, float(value))  # the likeliest of equal-looking tokens
        found.append(alternatives)
    return found


def pieces(outputs: dict, count: int) -> dict:
    """Tokens, log-probabilities and alternatives of the first ``count`` tokens of one signature row."""
    return {
        "tokens": _texts(outputs["tokens"][0][:count]),
        "token_logprobs": [float(v) for v in outputs["token_logprobs"][0][:count]],
        "top_tokens": outputs["top_tokens"][0],
        "top_logprobs": outputs["top_logprobs"][0],
        "count": count,
    }


def choice(
    index: int,
    prompt: str,
    generated: dict | None,
    prompt_pieces: dict | None,
    stop: list[str],
    logprobs: int | None,
) -> tuple[dict, int]:
    """One OpenAI choice, and how many tokens it generated.

    Args:
        generated: ``serving_default``'s outputs for this row (None when ``max_tokens`` is 0).
        prompt_pieces: ``pieces`` of ``score``'s outputs for the prompt (with ``echo``), else None.
    """
    whole = generated["text"][0].decode("utf-8", "replace") if generated is not None else ""
    completion, stopped = cut_at_stop(whole, stop)
    made = pieces(generated, int(generated["num_tokens"][0])) if generated is not None else None
    if made is not None and stopped:  # keep the tokens that begin before the cut
        made["count"] = sum(1 for o in token_offsets(whole, made["tokens"]) if o < len(completion))
    head = prompt if prompt_pieces is not None else ""
    text = head + completion
    result = {"text": text, "index": index, "logprobs": None}
    result["finish_reason"] = "stop" if stopped else "length"
    completion_tokens = made["count"] if made is not None else 0
    if logprobs is not None:
        parts = [(prompt_pieces, 0), (made, len(head))]
        result["logprobs"] = logprob_fields(text, [(p, at) for p, at in parts if p is not None], logprobs)
    return result, completion_tokens


def logprob_fields(text: str, parts: list[tuple[dict, int]], logprobs: int) -> dict:
    """OpenAI's ``logprobs`` of ``text`` from ``pieces`` (each with where its tokens begin in
    ``text``): tokens, their log-probabilities, the ``logprobs`` likeliest alternatives of each, and
    each token's character offset."""
    tokens, token_logprobs, top, offsets = [], [], [], []
    for part, start in parts:
        count = part["count"]
        part_tokens = part["tokens"][:count]
        offsets += token_offsets(text, part_tokens, start)
        tokens += part_tokens
        token_logprobs += part["token_logprobs"][:count]
        top += _top(part["top_tokens"], part["top_logprobs"], count, logprobs) if logprobs else []
    return {
        "tokens": tokens,
        "token_logprobs": token_logprobs,
        "top_logprobs": top if logprobs else None,
        "text_offset": offsets,
    }


def chunk_seed(seed: int, chunk: int) -> int:
    """The seed of a streamed choice's ``chunk``-th model call: ``seed`` for the first (so a stream
    that fits one chunk equals the non-streamed completion), then a mix of (seed, chunk) that no
    other choice's seed + small offset reaches."""
    if chunk == 0:
        return seed
    mixed = (seed * 0x9E3779B97F4A7C15 + chunk * 0xBF58476D1CE4E5B9) % 2**64
    return (mixed ^ (mixed >> 31)) % 2**63


def streamed_piece(
    index: int, head: str, before: str, outputs: dict, stop: list[str], logprobs: int | None
) -> tuple[dict, str, int, bool]:
    """The next piece of streamed choice ``index`` from one model call's ``outputs``.

    Args:
        head: the echoed prompt ("" without echo); before: the completion streamed so far.

    Returns:
        (the choice as one streamed event carries it: the new text, its tokens' log-probabilities
        with offsets in the whole choice's text; the completion so far after it; the tokens it adds;
        whether a stop sequence ended it).
    """
    chunk = outputs["text"][0].decode("utf-8", "replace")
    kept, stopped = cut_at_stop(before + chunk, stop)
    kept = kept if len(kept) >= len(before) else before  # a stop begun in sent text: that text stands
    new_text = kept[len(before) :]
    made = pieces(outputs, int(outputs["num_tokens"][0]))
    if stopped:  # keep the tokens that begin before the cut
        made["count"] = sum(1 for o in token_offsets(chunk, made["tokens"]) if o < len(new_text))
    delta = {"text": new_text, "index": index, "logprobs": None, "finish_reason": None}
    if logprobs is not None:
        delta["logprobs"] = logprob_fields(head + kept, [(made, len(head) + len(before))], logprobs)
    return delta, kept, made["count"], stopped


def score_pieces(outputs: dict) -> dict:
    """``pieces`` of one row of ``score``: its token log-probabilities are the /score route's
    surprisals in nats (``-bits * ln 2``), the same numbers."""
    count = int(outputs["num_tokens"][0])
    found = pieces(outputs, count)
    bits = np.asarray(outputs["token_surprisal"][0][:count], np.float64)
    found["token_logprobs"] = [float(v) for v in -bits * math.log(2.0)]
    return found
