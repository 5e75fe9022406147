"""Turning requests into signature inputs and outputs into responses (no HTTP here)."""

from __future__ import annotations

import math
import secrets

import numpy as np

from tf_zoneout_serve.schemas import MAX_SEED, GenerateRequest


def new_seed() -> int:
    return secrets.randbelow(MAX_SEED + 1)


def generate_inputs(prompt: str, request: GenerateRequest, max_new_tokens: int, seed: int) -> dict:
    """One row of the language models' ``serving_default`` inputs."""
    return {
        "prompt": np.asarray([prompt.encode()], object),
        "max_new_tokens": np.asarray([max_new_tokens], np.int32),
        "temperature": np.asarray([request.temperature], np.float32),
        "top_k": np.asarray([request.top_k], np.int32),
        "top_p": np.asarray([request.top_p], np.float32),
        "seed": np.asarray([seed], np.int64),
    }


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
    """The ScoreResponse fields from one row of the ``score`` signature's outputs."""
    count = int(outputs["num_tokens"][0])
    bits = float(outputs["bits_per_token"][0])
    return {
        "unit": "character" if level == "char" else "token",
        "num_tokens": count,
        "bits_per_token": bits,
        "perplexity": math.pow(2.0, bits),
        "nll": float(outputs["nll"][0]),
        "tokens": [t.decode("utf-8", "replace") for t in outputs["tokens"][0][:count]],
        "token_surprisal": [float(v) for v in outputs["token_surprisal"][0][:count]],
        "num_unknown": int(outputs["num_unknown"][0]),
    }
