"""OpenAI completions from the engine's generations (no HTTP here).

A choice's text is its ``Generation``'s; with ``echo``, the prompt comes first, with the
tokens and log-probabilities of ``score``, so echo-scoring gives exactly what ``/score`` gives.
``text_offset`` is each token's character position in the choice's text.
"""

from __future__ import annotations

from tf_zoneout_serve.engine import Piece, Tokens


def logprob_fields(parts: list[tuple[Tokens, int]], logprobs: int) -> dict:
    """OpenAI's ``logprobs`` of a choice from its token runs, each with where its text begins in the
    choice's text: tokens, their log-probabilities, the ``logprobs`` likeliest alternatives of each
    ({token: logprob}; the likeliest of equal-looking tokens) and each token's character offset."""
    fields = {"tokens": [], "token_logprobs": [], "top_logprobs": [] if logprobs else None, "text_offset": []}
    for run, start in parts:
        fields["tokens"] += run.tokens
        fields["token_logprobs"] += run.logprobs
        fields["text_offset"] += [start + o for o in run.offsets]
        if logprobs:
            for alternatives in run.top:
                if alternatives is None:  # a prompt's first token id: nothing precedes it
                    fields["top_logprobs"].append(None)
                    continue
                found: dict[str, float] = {}
                for token, value in alternatives[:logprobs]:
                    found.setdefault(token, value)
                fields["top_logprobs"].append(found)
    return fields


def choice(
    index: int,
    piece: Piece,
    logprobs: int | None,
    echo: tuple[str, Tokens] | None = None,
    completion_start: int = 0,
) -> dict:
    """One OpenAI choice, or one streamed event's choice.

    Args:
        index: the choice's index.
        piece: the generation's text and tokens in this choice or event (offsets within the
            completion).
        logprobs: alternatives per token, or None for no ``logprobs`` at all.
        echo: the echoed prompt and its tokens, when this choice or event starts with them.
        completion_start: where the completion begins in the choice's text (the echoed prompt's
            length with ``echo``, else 0).
    """
    head, head_tokens = echo if echo is not None else ("", None)
    result = {
        "text": head + piece.text,
        "index": index,
        "logprobs": None,
        "finish_reason": piece.finish_reason,
    }
    if logprobs is not None:
        parts = ([(head_tokens, 0)] if head_tokens is not None else []) + [(piece.tokens, completion_start)]
        result["logprobs"] = logprob_fields(parts, logprobs)
    return result
