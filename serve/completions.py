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
        parts = [p for p in (prompt_pieces, made) if p is not None]
        tokens, token_logprobs, top, offsets = [], [], [], []
        for part, start in zip(parts, [0, len(head)] if prompt_pieces is not None else [len(head)]):
            count = part["count"]
            part_tokens = part["tokens"][:count]
            offsets += token_offsets(text, part_tokens, start)
            tokens += part_tokens
            token_logprobs += part["token_logprobs"][:count]
            top += _top(part["top_tokens"], part["top_logprobs"], count, logprobs) if logprobs else []
        result["logprobs"] = {
            "tokens": tokens,
            "token_logprobs": token_logprobs,
            "top_logprobs": top if logprobs else None,
            "text_offset": offsets,
        }
    return result, completion_tokens


def score_pieces(outputs: dict) -> dict:
    """``pieces`` of one row of ``score``: its token log-probabilities are the /score route's
    surprisals in nats (``-bits * ln 2``), the same numbers."""
    count = int(outputs["num_tokens"][0])
    found = pieces(outputs, count)
    bits = np.asarray(outputs["token_surprisal"][0][:count], np.float64)
    found["token_logprobs"] = [float(v) for v in -bits * math.log(2.0)]
    return found
