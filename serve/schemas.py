"""Request and response bodies, with their limits in the schema (OpenAPI shows them)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

MAX_PROMPT_CHARS = 20_000
MAX_STOP_SEQUENCES = 8


class GenerateRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    prompt: str = Field(
        "", max_length=MAX_PROMPT_CHARS, description="text to continue (seq2seq: the problem)"
    )
    max_new_tokens: int = Field(100, ge=1, le=4096, description="tokens (characters for char models) to add")
    temperature: float = Field(1.0, ge=0.0, le=10.0, description="0: greedy")
    top_k: int = Field(0, ge=0, le=100_000, description="sample among the k most likely; 0: off")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1: off")
    seed: int | None = Field(None, ge=0, le=2**63 - 1, description="same seed, same text; none: random")
    stop: list[str] = Field(
        default_factory=list,
        max_length=MAX_STOP_SEQUENCES,
        description="cut the text before the first of these",
    )


class GenerateResponse(BaseModel):
    model: str
    version: int
    text: str
    finish_reason: Literal["length", "stop", "answer"]
    num_tokens: int
    logprob: float | None = None
    seed: int
    num_unknown: int = Field(0, description="prompt characters or words outside the vocabulary")


class ScoreRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: str = Field(..., min_length=1, max_length=MAX_PROMPT_CHARS)


class ScoreResponse(BaseModel):
    model: str
    version: int
    unit: Literal["character", "token"]
    num_tokens: int
    bits_per_token: float = Field(..., description="bits per character for char models")
    perplexity: float = Field(..., description="2 ** bits_per_token")
    nll: float = Field(..., description="total negative log-likelihood, nats")
    tokens: list[str]
    token_surprisal: list[float] = Field(..., description="bits, one per token")
    num_unknown: int = Field(0, description="characters skipped or words mapped to <unk>")


class ModelInfo(BaseModel):
    name: str
    version: int
    task: str | None
    kind: str
    level: str | None
    vocab_size: int | None
    signatures: list[str]
    metrics: dict


class ModelList(BaseModel):
    models: list[ModelInfo]


class ErrorBody(BaseModel):
    detail: str
