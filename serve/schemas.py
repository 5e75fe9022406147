"""Request and response bodies. The request limits come from the server's settings
(``request_models``), so the OpenAPI document states the limits the server enforces."""

from __future__ import annotations

import typing
from typing import Annotated, Any, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, create_model, field_validator, model_validator

MAX_STOP_SEQUENCES = 8
MAX_STOP_CHARS = 64
MAX_TEXT_CHARS = 20_000  # the defaults of the settings of the same names
MAX_NEW_TOKENS = 1000
# Seeds stay below 2**53: every JSON parser (JavaScript's included) reads them exactly, and the
# per-chunk and per-choice offsets added to them stay far inside int64.
MAX_SEED = 2**53 - 1


class StrictBody(BaseModel):
    """A request body with strict types, as its schema says: no boolean for a number, no number for a
    string, no unknown field. A number with a zero fraction (``3.0``) is accepted for an integer
    field, as JSON Schema's ``integer`` includes it."""

    model_config = ConfigDict(extra="forbid", strict=True)

    @model_validator(mode="before")
    @classmethod
    def integral_numbers_as_integers(cls, data):
        if not isinstance(data, dict):
            return data
        integers = {
            name
            for name, field in cls.model_fields.items()
            if int in (typing.get_args(field.annotation) or (field.annotation,))
        }
        return {
            key: int(value) if key in integers and isinstance(value, float) and value.is_integer() else value
            for key, value in data.items()
        }


def generate_limits(max_text_chars: int, max_new_tokens: int) -> dict:
    """The fields of a generation request that depend on the server's limits (their one home)."""
    return {
        "prompt": (
            str,
            Field("", max_length=max_text_chars, description="text to continue (seq2seq: the problem)"),
        ),
        "max_new_tokens": (
            int,
            Field(
                min(100, max_new_tokens),
                ge=1,
                le=max_new_tokens,
                description="tokens (characters for char models) to add",
            ),
        ),
    }


def score_limits(max_text_chars: int) -> dict:
    """The field of a scoring request that depends on the server's limits."""
    return {
        "text": (str, Field(..., min_length=1, max_length=max_text_chars, description="the text to score"))
    }


class _GenerateFields(StrictBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"prompt": "the company said ", "seed": 1}]})

    temperature: float = Field(1.0, ge=0.0, le=10.0, description="0: greedy")
    top_k: int = Field(0, ge=0, le=100_000, description="sample among the k most likely; 0: off")
    top_p: float = Field(1.0, gt=0.0, le=1.0, description="nucleus sampling mass; 1: off")
    seed: int | None = Field(None, ge=0, le=MAX_SEED, description="same seed, same text; none: random")
    stop: list[Annotated[str, Field(max_length=MAX_STOP_CHARS)]] = Field(
        default_factory=list,
        max_length=MAX_STOP_SEQUENCES,
        description="cut the text before the first of these",
    )


# The request bodies with the default limits; ``request_models`` gives the server's own.
GenerateRequest = create_model(
    "GenerateRequest",
    __base__=_GenerateFields,
    __doc__="A generation request: prompt, max_new_tokens, sampling, seed, stop sequences.",
    **generate_limits(MAX_TEXT_CHARS, MAX_NEW_TOKENS),
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


class _ScoreFields(StrictBody):
    model_config = ConfigDict(json_schema_extra={"examples": [{"text": "the company said"}]})


ScoreRequest = create_model(
    "ScoreRequest", __base__=_ScoreFields, __doc__="A text to score.", **score_limits(MAX_TEXT_CHARS)
)


class RequestModels(NamedTuple):
    generate: type
    score: type


def request_models(max_text_chars: int, max_new_tokens: int) -> RequestModels:
    """The request bodies with this server's limits (same names in OpenAPI as the defaults)."""
    generate = create_model(
        "GenerateRequest", __base__=GenerateRequest, **generate_limits(max_text_chars, max_new_tokens)
    )
    score = create_model("ScoreRequest", __base__=ScoreRequest, **score_limits(max_text_chars))
    return RequestModels(generate, score)


def largest_request_bytes(max_text_chars: int) -> int:
    """An upper bound of a schema-valid request body's size in compact JSON: at worst every character
    is written as a 12-byte surrogate-pair escape. Settings check max_body_bytes against it."""
    return 12 * (max_text_chars + MAX_STOP_SEQUENCES * MAX_STOP_CHARS) + 1024


class StreamChunk(BaseModel):
    text: str = Field(..., description="the next piece of the continuation")


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


class TensorSpec(BaseModel):
    dtype: str = Field(..., description="e.g. string, float32, int64")
    shape: list[int | None] | None = Field(
        ..., description="null: any size (first: the batch); null: any rank"
    )


class StateSlice(BaseModel):
    layer: int
    state: Literal["h", "c"]
    offset: int
    size: int


class StepInfo(BaseModel):
    state_size: int = Field(..., description="S: the state vector's size (zeros: a new text)")
    vocab_size: int = Field(..., description="V: the log-probabilities' size")
    start_id: int = Field(..., description="the token a text is read after (feed it first)")
    state_layout: list[StateSlice] = Field(..., description="where each layer's states lie in the vector")


class ModelInfo(BaseModel):
    name: str
    version: int
    task: str | None
    kind: str = Field(
        ..., description="language_model, seq2seq, classifier, or saved_model (no tf-zoneout metadata)"
    )
    level: str | None
    vocab_size: int | None
    signatures: list[str]
    operations: list[str] = Field(
        default_factory=list,
        description="what the model can be asked: generate, generate_stream, score, completions, predict "
        "(the others answer 404)",
    )
    signature_inputs: dict[str, dict[str, TensorSpec]] = Field(
        default_factory=dict, description="each signature's inputs, for POST /v1/models/{name}/predict"
    )
    metrics: dict
    step: StepInfo | None = Field(
        None,
        description="a language model's token-level `step` signature: what a client carrying the state needs",
    )


class PredictRequest(StrictBody):
    signature_name: str = Field("serving_default", max_length=256)
    inputs: dict[str, Any] = Field(
        ..., description="each input of the signature as nested lists, first dimension the batch"
    )


class PredictResponse(BaseModel):
    model: str
    version: int
    signature_name: str
    outputs: dict[str, Any] = Field(..., description="each output as nested lists (strings as UTF-8 text)")


class OpenAIModel(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str = "tf-zoneout"


class ModelList(BaseModel):
    """Today's list (``models``) and OpenAI's (``object``, ``data``), so the openai SDK lists them."""

    models: list[ModelInfo]
    object: Literal["list"] = "list"
    data: list[OpenAIModel] = Field(default_factory=list)


# -- OpenAI's completions API (as vLLM implements it) ---------------------------------------------

MAX_PROMPTS = 16  # prompts in one completions request
MAX_CHOICES = 8  # n
MAX_LOGPROBS = 5  # the alternatives the exported signatures carry per token


def prompts_type(max_text_chars: int):
    """A text of at most ``max_text_chars`` characters, or a list of 1 to ``MAX_PROMPTS`` texts that
    share that limit (each at most ``max_text_chars // MAX_PROMPTS``), so that every schema-valid
    request fits the body limit ``largest_request_bytes`` sets."""
    text = Annotated[str, Field(max_length=max_text_chars)]
    shared = Annotated[str, Field(max_length=max(1, max_text_chars // MAX_PROMPTS))]
    return text | Annotated[list[shared], Field(min_length=1, max_length=MAX_PROMPTS)]


StopSequence = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
StopSequences = StopSequence | Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)]


def completion_limits(max_text_chars: int, max_new_tokens: int) -> dict:
    """The fields of a completions request that depend on the server's limits (their one home)."""
    return {
        "prompt": (
            prompts_type(max_text_chars),
            Field("", description="a text, or 1 to 16 shorter texts (the list shares the text limit)"),
        ),
        "max_tokens": (
            int,
            Field(
                min(16, max_new_tokens),
                ge=0,
                le=max_new_tokens,
                description="0: nothing generated (with echo and logprobs: the prompt scored)",
            ),
        ),
    }


class StreamOptions(StrictBody):
    include_usage: bool = Field(False, description="a last event with the usage (and no choices)")


class _CompletionFields(StrictBody):
    """POST /v1/completions: OpenAI's fields as vLLM takes them, less the limit-dependent ones."""

    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {"model": "char_lm", "prompt": "the ", "seed": 1, "logprobs": 2},
                {"model": "char_lm", "prompt": "the company", "max_tokens": 0, "echo": True, "logprobs": 1},
            ]
        }
    )

    model: str = Field(..., max_length=64, description="a loaded language model's name (GET /v1/models)")
    temperature: float = Field(1.0, ge=0.0, le=10.0, description="0: greedy")
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    top_k: int = Field(0, ge=-1, le=100_000, description="extension (vLLM's): 0 or -1 is off")
    seed: int | None = Field(
        None, ge=0, le=MAX_SEED, description="choice i of every prompt is sampled with seed + i (as vLLM)"
    )
    stop: StopSequences | None = Field(None, description="cut each completion before the first of these")
    n: int = Field(1, ge=1, le=MAX_CHOICES, description="completions per prompt")
    stream: bool = False
    logprobs: int | None = Field(None, ge=0, le=MAX_LOGPROBS, description="alternatives per token")
    echo: bool = Field(False, description="prepend the prompt (and its logprobs) to each completion")
    user: str | None = Field(None, max_length=256, description="accepted and ignored")
    # OpenAI's fields that vLLM accepts, at the only values served here (the schema says so, and a
    # client's other value is 400 naming the field, with ``_only_served_values``' message).
    frequency_penalty: float = Field(0.0, ge=0.0, le=0.0, description="only 0 is served")
    presence_penalty: float = Field(0.0, ge=0.0, le=0.0, description="only 0 is served")
    best_of: int | None = Field(None, ge=1, le=1, description="only 1 (or unset) is served")
    logit_bias: dict[str, float] | None = Field(None, max_length=0, description="only empty is served")
    suffix: str | None = Field(None, max_length=0, description="no meaning for these models: only empty")
    stream_options: StreamOptions | None = Field(None, description="with stream: include_usage")

    @field_validator(
        "frequency_penalty", "presence_penalty", "best_of", "logit_bias", "suffix", mode="before"
    )
    @classmethod
    def _only_served_values(cls, value, info):
        """A clear message for a value of these fields that this server does not serve."""
        served = {"best_of": (None, 1), "logit_bias": (None, {}), "suffix": (None, "")}
        if isinstance(value, bool) or value in served.get(info.field_name, (0,)):
            return value  # booleans fail the strict type check that follows
        if info.field_name == "suffix":
            raise ValueError(
                "suffix has no meaning for these models (they continue text; they do not insert)"
            )
        raise ValueError(f"{info.field_name} {value!r} is not supported by this server (only the default)")


CompletionRequest = create_model(
    "CompletionRequest",
    __base__=_CompletionFields,
    __doc__="POST /v1/completions with the default limits; completion_request_model gives the server's.",
    **completion_limits(MAX_TEXT_CHARS, MAX_NEW_TOKENS),
)


def completion_request_model(max_text_chars: int, max_new_tokens: int) -> type:
    """CompletionRequest with this server's limits (the same name in OpenAPI)."""
    return create_model(
        "CompletionRequest", __base__=CompletionRequest, **completion_limits(max_text_chars, max_new_tokens)
    )


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: list[dict[str, float]] | None
    text_offset: list[int]


class CompletionChoice(BaseModel):
    text: str
    index: int
    logprobs: CompletionLogprobs | None = None
    finish_reason: Literal["length", "stop"] | None


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class CompletionResponse(BaseModel):
    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: CompletionUsage | None = None
