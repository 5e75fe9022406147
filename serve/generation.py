"""Turning requests into signature inputs and outputs into responses (no HTTP here)."""

from __future__ import annotations

import secrets

from tf_zoneout import signatures
from tf_zoneout_serve.schemas import MAX_SEED, GenerateRequest


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def generate_inputs(prompt: str, request: GenerateRequest, max_new_tokens: int, seed: int) -> dict:
    """One row of the language models' ``serving_default`` inputs (``signatures.GENERATE``), with
    the request's sampling settings."""
    return signatures.generate_inputs(
        [prompt],
        max_new_tokens=max_new_tokens,
        temperature=request.temperature,
        top_k=request.top_k,
        top_p=request.top_p,
        seed=seed,
    )


def score_inputs(text: str) -> dict:
    """One row of the language models' ``score`` inputs (``signatures.SCORE``)."""
    return signatures.score_inputs([text])


def cut_at_stop(text: str, stop: list[str]) -> tuple[str, bool]:
    """``text`` up to (not including) the earliest stop sequence, and whether one was found."""
    positions = [text.find(s) for s in stop if s and s in text]
    if not positions:
        return text, False
    return text[: min(positions)], True


def count_tokens(text: str, level: str | None) -> int:
    """Tokens in generated text: characters for char models, words (and newlines) otherwise."""
    if level == "char":
        return len(text)
    return len(text.split()) + text.count("\n")


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
