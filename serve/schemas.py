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
    is written as a 12-byte surrogate-pair escape (a token id, ``MAX_TOKEN_ID`` and its comma, takes
    no more), plus the largest ``logit_bias``. Settings check max_body_bytes against it."""
    bias_entry = 48  # a quoted id (12), a colon, a float at full length (24 at most), a comma
    return 12 * (max_text_chars + MAX_STOP_SEQUENCES * MAX_STOP_CHARS) + MAX_LOGIT_BIAS * bias_entry + 1024


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
MAX_CHOICES = 8  # n and best_of
MAX_LOGPROBS = 5  # the alternatives the exported signatures carry per token
MAX_LOGIT_BIAS = 300  # entries of logit_bias
MAX_TOKEN_ID = 2**31 - 1  # an int32; the model's vocabulary decides which are valid


def prompts_type(max_text_chars: int):
    """A text of at most ``max_text_chars`` characters or a list of at most that many token ids; or a
    list of 1 to ``MAX_PROMPTS`` of either, which share that limit (each at most
    ``max_text_chars // MAX_PROMPTS``), so that every schema-valid request fits the body limit
    ``largest_request_bytes`` sets."""
    share = max(1, max_text_chars // MAX_PROMPTS)
    token = Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]
    text = Annotated[str, Field(max_length=max_text_chars)]
    ids = Annotated[list[token], Field(min_length=1, max_length=max_text_chars)]
    shared_text = Annotated[str, Field(max_length=share)]
    shared_ids = Annotated[list[token], Field(min_length=1, max_length=share)]
    several = Field(min_length=1, max_length=MAX_PROMPTS)
    return text | ids | Annotated[list[shared_text], several] | Annotated[list[shared_ids], several]


StopSequence = Annotated[str, Field(max_length=MAX_STOP_CHARS)]
StopSequences = StopSequence | Annotated[list[StopSequence], Field(max_length=MAX_STOP_SEQUENCES)]


def completion_limits(max_text_chars: int, max_new_tokens: int) -> dict:
    """The fields of a completions request that depend on the server's limits (their one home)."""
    return {
        "prompt": (
            prompts_type(max_text_chars),
            Field(
                "",
                description="a text or a list of token ids (GET /tokenizer_info), or 1 to 16 of either "
                "(the list shares the limit); token ids are read as given, so the first has no logprob",
            ),
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
    frequency_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="subtracted from a token's logit per time it was generated"
    )
    presence_penalty: float = Field(
        0.0, ge=-2.0, le=2.0, description="subtracted from the logit of every token generated"
    )
    logit_bias: dict[str, Annotated[float, Field(ge=-100.0, le=100.0)]] | None = Field(
        None,
        max_length=MAX_LOGIT_BIAS,
        description="token id (a decimal string) -> added to its logit before sampling",
    )
    best_of: int | None = Field(
        None,
        ge=1,
        le=MAX_CHOICES,
        description="completions made per prompt (seeds seed + j); the n with the highest log-probability "
        "per token are returned, best first (not with stream)",
    )
    suffix: str | None = Field(None, max_length=0, description="no meaning for these models: only empty")
    stream_options: StreamOptions | None = Field(None, description="with stream: include_usage")

    @field_validator("suffix", mode="before")
    @classmethod
    def _no_suffix(cls, value):
        if value in (None, ""):
            return value
        raise ValueError("suffix has no meaning for these models (they continue text; they do not insert)")

    @field_validator("logit_bias")
    @classmethod
    def _token_ids_as_keys(cls, value):
        for key in value or {}:
            if not key.isascii() or not key.isdigit() or int(key) > MAX_TOKEN_ID:
                raise ValueError(f"logit_bias keys are token ids written as decimal strings; got {key!r}")
        return value

    @model_validator(mode="after")
    def _best_of_with_n(self):
        if self.best_of is not None and self.best_of < self.n:
            raise ValueError(f"best_of ({self.best_of}) must be at least n ({self.n})")
        if self.best_of is not None and self.best_of > self.n and self.stream:
            raise ValueError("best_of greater than n cannot be streamed (the best are known at the end)")
        return self


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


# -- vLLM's tokenizer endpoints ------------------------------------------------------------------


def tokenizer_limits(max_text_chars: int) -> dict:
    """The fields of the tokenizer requests that depend on the server's limits (their one home)."""
    token = Annotated[int, Field(ge=0, le=MAX_TOKEN_ID)]
    return {
        "prompt": (str, Field(..., max_length=max_text_chars, description="the text to tokenize")),
        "tokens": (list[token], Field(..., max_length=max_text_chars, description="token ids")),
    }


class _TokenizerFields(StrictBody):
    model: str | None = Field(
        None, max_length=64, description="a language model's name; unset: the path's, or the only one served"
    )


class _TokenizeFields(_TokenizerFields):
    model_config = ConfigDict(json_schema_extra={"examples": [{"prompt": "the company", "model": "char_lm"}]})
    add_special_tokens: bool = Field(True, description="put the model's start token first (as a BOS)")
    return_token_strs: bool = Field(False, description="also each token as text")


class TokenizeResponse(BaseModel):
    count: int
    max_model_len: int = Field(..., description="the most token ids a prompt may hold here")
    tokens: list[int]
    token_strs: list[str] | None = None
    num_unknown: int = Field(0, description="characters skipped (char models) or words made <unk>")


class DetokenizeResponse(BaseModel):
    prompt: str


class TokenizerInfo(BaseModel):
    """What a vLLM client (lm-evaluation-harness's remote tokenizer) reads of the tokenizer."""

    tokenizer_class: str = Field(..., description="the export's in-graph codec, by level")
    level: str
    vocab_size: int
    bos_token: str = Field(..., description="the start token's text: every text is read after it")
    eos_token: str = Field(..., description="the same token (it ends a line and begins the next)")
    unk_token: str | None
    pad_token: str | None = None
    model_max_length: int
    chat_template: str | None = Field(None, description="none: completion models")


class TokenizerRequests(NamedTuple):
    tokenize: type
    detokenize: type


def tokenizer_request_models(max_text_chars: int) -> TokenizerRequests:
    """The tokenize and detokenize bodies with this server's limits."""
    limits = tokenizer_limits(max_text_chars)
    return TokenizerRequests(
        create_model("TokenizeRequest", __base__=_TokenizeFields, prompt=limits["prompt"]),
        create_model("DetokenizeRequest", __base__=_TokenizerFields, tokens=limits["tokens"]),
    )


class CompletionLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float | None] = Field(..., description="null for a prompt's first token id")
    top_logprobs: list[dict[str, float] | None] | None
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
