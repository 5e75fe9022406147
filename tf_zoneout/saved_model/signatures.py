"""The exported signatures' inputs and outputs: the one declaration that export, ``zoneout sample``
and ``score``, and the service all use.

Every export of a kind has these signatures with exactly these inputs and outputs (``export.py``
traces its functions from ``Signature.tensor_specs`` and refuses to write an export whose outputs
differ from the declaration). Clients build their requests with ``generate_inputs``,
``resume_inputs``, ``text_inputs`` and ``read_inputs``, and read a score with ``score_summary``.
B is the batch; W the longest row's token count; K ``TOP_LOGPROBS`` (fewer for a smaller vocabulary).

>>> GENERATE.input_names[:6]
('prompt', 'max_new_tokens', 'temperature', 'top_k', 'top_p', 'seed')
>>> inputs = generate_inputs(["the "], max_new_tokens=5, temperature=0.0, seed=7)
>>> inputs["seed"], inputs["top_p"]
(array([7]), array([1.], dtype=float32))
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from tf_zoneout.saved_model.model_base import ModelKind

TOP_LOGPROBS = 5  # alternatives reported per token (OpenAI's completions API allows up to 5)
MAX_NEW_TOKENS = 4096  # the most tokens one generate or resume call makes (a cap inside the graph)


@dataclasses.dataclass(frozen=True)
class Tensor:
    """One input or output of a signature.

    Attributes:
        name: its key in the signature.
        dtype: a TensorFlow dtype name ("string", "int32", "float32", "int64").
        shape: its shape, None for any size (the batch first).
        doc: what it holds.
    """

    name: str
    dtype: str
    shape: tuple[int | None, ...]
    doc: str


@dataclasses.dataclass(frozen=True)
class Signature:
    """One signature of an export.

    Attributes:
        key: its name in the SavedModel ("serving_default", "score").
        inputs: its inputs, in the order the traced function takes them.
        outputs: its outputs (a dictionary: their order carries no meaning).
        doc: what it does.
    """

    key: str
    inputs: tuple[Tensor, ...]
    outputs: tuple[Tensor, ...]
    doc: str

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(tensor.name for tensor in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(tensor.name for tensor in self.outputs)

    def tensor_specs(self, **shapes) -> list:
        """``tf.TensorSpec`` of each input, in order: the ``input_signature`` to trace with.

        Args:
            **shapes: a model's own shape for an input declared with a free size (the state's S).
        """
        import tensorflow as tf

        return [
            tf.TensorSpec(shapes.get(t.name, t.shape), tf.dtypes.as_dtype(t.dtype), name=t.name)
            for t in self.inputs
        ]

    def check_outputs(self, names) -> None:
        """Raise ValueError unless ``names`` are exactly this signature's outputs."""
        missing, extra = set(self.output_names) - set(names), set(names) - set(self.output_names)
        if missing or extra:
            raise ValueError(
                f"signature {self.key!r} must return {sorted(self.output_names)}; it lacks "
                f"{sorted(missing)} and adds {sorted(extra)}"
            )


def _batch(name: str, dtype: str, doc: str, *more: int | None) -> Tensor:
    return Tensor(name, dtype, (None, *more), doc)


_PER_TOKEN = (
    _batch("tokens", "string", "[B, W] each token as text ('' past the row's end)", None),
    _batch("token_logprobs", "float32", "[B, W] log-probability of each token, nats", None),
    _batch("top_tokens", "string", "[B, W, K] the K most likely tokens at each position", None, None),
    _batch("top_logprobs", "float32", "[B, W, K] their log-probabilities, nats", None, None),
)

_SAMPLING = (
    _batch("max_new_tokens", "int32", "[B] tokens to generate (<= 0: none)"),
    _batch("temperature", "float32", "[B] softmax temperature (<= 0: greedy)"),
    _batch("top_k", "int32", "[B] sample among the k most likely tokens (0: off)"),
    _batch("top_p", "float32", "[B] nucleus sampling's probability mass (1: off)"),
    _batch("seed", "int64", "[B] the draw's seed: the same seed gives the same text"),
    _batch(
        "frequency_penalty",
        "float32",
        "[B] subtracted from a token's logit per time it was generated (0: off)",
    ),
    _batch("presence_penalty", "float32", "[B] subtracted from the logit of every token generated (0: off)"),
    _batch(
        "logit_bias", "float32", "[B, V] added to each token's logit before sampling ([B, 0]: none)", None
    ),
)
_COUNTS = "[B, V] times each token was generated in this generation"
_STATE_IN = _batch(
    "state", "float32", "[B, S] the RNN state (zeros: a new text; layout in metadata.json)", None
)
_GENERATED = (
    _batch("text", "string", "[B] the generated continuation"),
    _batch("logprob", "float32", "[B] its log-probability under the model, nats"),
    _batch("num_tokens", "int32", "[B] tokens generated"),
    _batch("num_unknown", "int32", "[B] prompt tokens outside the vocabulary"),
    _batch("num_prompt_tokens", "int32", "[B] prompt tokens read (0 for resume)"),
    _batch("token_ids", "int32", "[B, W] each generated token's id (0 past the row's end)", None),
    _batch(
        "state", "float32", "[B, S] the state after the row's last token: `resume` continues from it", None
    ),
    _batch("token_counts", "int32", _COUNTS + " (for resume's penalties)", None),
    *_PER_TOKEN,
)

GENERATE = Signature(
    "serving_default",
    inputs=(_batch("prompt", "string", "[B] text to continue ('' starts a new text)"), *_SAMPLING),
    outputs=_GENERATED,
    doc="a language model continues each prompt; tokenization and sampling run in the graph",
)

RESUME = Signature(
    "resume",
    inputs=(
        _STATE_IN,
        _batch("position", "int32", "[B] tokens this generation made before: the draws continue from there"),
        _batch("token_counts", "int32", _COUNTS + " before (an output; [B, 0]: none)", None),
        *_SAMPLING,
    ),
    outputs=_GENERATED,
    doc="continue a generation from the state serving_default or resume returned: no prefix is read "
    "again, and with the same seed the draws go on as one call would have made them",
)

STEP = Signature(
    "step",
    inputs=(
        _batch("token", "int32", "[B] one token id per row, the token read at this step"),
        _STATE_IN,
    ),
    outputs=(
        _batch("logprobs", "float32", "[B, V] log-softmax of the next token (inference-mode zoneout)", None),
        _batch("state", "float32", "[B, S] the state after the token", None),
    ),
    doc="one token per row, the state in and out: no loop, no string op, no random op (TFLite builtins "
    "and ONNX convert it)",
)

SCORE = Signature(
    "score",
    inputs=(_batch("text", "string", "[B] text to score"),),
    outputs=(
        _batch("nll", "float32", "[B] negative log-likelihood of the text, nats"),
        _batch("num_tokens", "int32", "[B] tokens scored"),
        _batch("bits_per_token", "float32", "[B] mean surprisal, bits per token (0 when nothing scored)"),
        _batch("token_surprisal", "float32", "[B, W] surprisal of each token, bits", None),
        _batch("lengths", "int32", "[B] the same as num_tokens (older clients read it)"),
        _batch("num_unknown", "int32", "[B] tokens outside the vocabulary"),
        *_PER_TOKEN,
    ),
    doc="a language model's surprisal of every token, the state carried through the text",
)

TOKENIZE = Signature(
    "tokenize",
    inputs=(_batch("text", "string", "[B] text to turn into token ids"),),
    outputs=(
        _batch("token_ids", "int32", "[B, W] the text's token ids, as score and generate read them", None),
        _batch("num_tokens", "int32", "[B] tokens in the row"),
        _batch("num_unknown", "int32", "[B] items outside the vocabulary"),
        _batch("tokens", "string", "[B, W] each token as text ('' past the row's end)", None),
    ),
    doc="the export's own tokenization (no start token is added)",
)

READ = Signature(
    "read",
    inputs=(
        _batch(
            "token_ids",
            "int32",
            "[B, W] token ids, read from the zero state (any value past num_tokens)",
            None,
        ),
        _batch("num_tokens", "int32", "[B] tokens in the row"),
    ),
    outputs=(
        _batch("text", "string", "[B] the ids as text"),
        _batch(
            "state",
            "float32",
            "[B, S] the state after the row's last token: `resume` continues from it",
            None,
        ),
        *_PER_TOKEN,
    ),
    doc="read token ids: each token's log-probability given the tokens before it (the first has "
    "none: 0), the likeliest alternatives, and the state to continue from",
)

ANSWER = Signature(
    "serving_default",
    inputs=(_batch("problem", "string", "[B] a problem, e.g. '123+45' (spaces ignored)"),),
    outputs=(_batch("answer", "string", "[B] the greedy answer"),),
    doc="a seq2seq model answers each problem",
)

CLASSIFY = Signature(
    "serving_default",
    inputs=(_batch("pixels", "float32", "[B, 784] an image's pixels in [0, 1], row-major", 784),),
    outputs=(
        _batch("probabilities", "float32", "[B, 10] class probabilities", 10),
        _batch("label", "int64", "[B] the most likely class"),
    ),
    doc="a sequence classifier reads the pixels one per step",
)

SIGNATURES: Mapping[ModelKind, tuple[Signature, ...]] = {
    ModelKind.LANGUAGE_MODEL: (GENERATE, SCORE, RESUME, STEP, TOKENIZE, READ),
    ModelKind.SEQ2SEQ: (ANSWER,),
    ModelKind.CLASSIFIER: (CLASSIFY,),
}


def _column(values, dtype: str, rows: int) -> np.ndarray:
    """``values`` (one value for every row, or one per row) as a [rows] array of ``dtype``."""
    if dtype == "string":
        items = [values] * rows if isinstance(values, str | bytes) else list(values)
        array = np.asarray([v.encode() if isinstance(v, str) else v for v in items], object)
    else:
        array = np.asarray(values, dtype)
        array = np.full([rows], array) if array.ndim == 0 else array
    if array.shape != (rows,):
        raise ValueError(f"expected one value or {rows} values; got shape {array.shape}")
    return array


def _matrix(values, dtype: str, rows: int) -> np.ndarray:
    """``values`` (None: no column; one row for every row; or one row per row) as a [rows, N] array."""
    array = np.zeros([rows, 0], dtype) if values is None else np.asarray(values, dtype)
    array = np.broadcast_to(array, (rows, array.shape[-1])) if array.ndim == 1 else array
    if array.ndim != 2 or array.shape[0] != rows:
        raise ValueError(f"expected one row or {rows} rows; got shape {array.shape}")
    return np.ascontiguousarray(array)


def _sampling_inputs(signature: Signature, rows: int, **values) -> dict[str, np.ndarray]:
    """The [B] columns and [B, N] matrices of ``signature``'s inputs from ``values``."""
    return {
        t.name: (_matrix if len(t.shape) == 2 else _column)(values[t.name], t.dtype, rows)
        for t in signature.inputs
        if t.name in values
    }


_SAMPLING_DEFAULTS = dict(
    max_new_tokens=100, temperature=1.0, top_k=0, top_p=1.0, seed=0,
    frequency_penalty=0.0, presence_penalty=0.0, logit_bias=None,
)  # fmt: skip


def generate_inputs(
    prompts: Sequence[str],
    max_new_tokens=100,
    temperature=1.0,
    top_k=0,
    top_p=1.0,
    seed=0,
    frequency_penalty=0.0,
    presence_penalty=0.0,
    logit_bias=None,
) -> dict[str, np.ndarray]:
    """The inputs of ``GENERATE`` for the rows ``prompts``.

    Args:
        prompts: B texts to continue.
        max_new_tokens: tokens to generate (<= 0: none); one value for all rows or one per row,
            as every argument below.
        temperature: softmax temperature (<= 0: greedy).
        top_k: sample among the k most likely tokens (0: off).
        top_p: nucleus sampling's probability mass (1: off).
        seed: the draw's seed.
        frequency_penalty: subtracted from a token's logit per time it was generated (OpenAI's).
        presence_penalty: subtracted from the logit of every token generated.
        logit_bias: [V] or [B, V] added to the logits by token id (fewer columns: no bias past
            them); None: none.

    Returns:
        {input name: [B] array of its dtype ([B, N] for ``logit_bias``)}.

    Raises:
        ValueError: an argument has neither one value nor one per prompt.
    """
    values = dict(locals())
    prompts = list(values.pop("prompts"))
    return _sampling_inputs(GENERATE, len(prompts), prompt=prompts, **values)


def resume_inputs(state, position, token_counts=None, **sampling) -> dict[str, np.ndarray]:
    """The inputs of ``RESUME`` for the rows of ``state``.

    Args:
        state: [B, S] states, as ``GENERATE``, ``RESUME`` or ``READ`` returned them.
        position: tokens each row's generation made before (one value or one per row).
        token_counts: [B, V] the ``token_counts`` the last call returned (None: none yet).
        **sampling: max_new_tokens, temperature, top_k, top_p, seed (the generation's own:
            ``position`` moves the draws on), frequency_penalty, presence_penalty and logit_bias,
            as ``generate_inputs`` takes them (the same defaults).

    Raises:
        ValueError: an argument has neither one value nor one per row.
        TypeError: ``sampling`` names something else.
    """
    unknown = set(sampling) - set(_SAMPLING_DEFAULTS)
    if unknown:
        raise TypeError(f"resume_inputs() got unexpected arguments {sorted(unknown)}")
    state = np.asarray(state, np.float32)
    values = {**_SAMPLING_DEFAULTS, **sampling, "position": position, "token_counts": token_counts}
    return {"state": state} | _sampling_inputs(RESUME, state.shape[0], **values)


def text_inputs(texts: Sequence[str]) -> dict[str, np.ndarray]:
    """The inputs of ``SCORE`` and ``TOKENIZE`` for the rows ``texts``.

    Args:
        texts: B texts.
    """
    return {"text": _column(list(texts), "string", len(texts))}


def read_inputs(rows: Sequence[Sequence[int]]) -> dict[str, np.ndarray]:
    """The inputs of ``READ`` for B lists of token ids (padded with zeros to the longest).

    Args:
        rows: B lists of token ids.
    """
    lengths = np.array([len(r) for r in rows], np.int32)
    ids = np.zeros([len(rows), max(lengths, default=0)], np.int32)
    for i, row in enumerate(rows):
        ids[i, : len(row)] = row
    return {"token_ids": ids, "num_tokens": lengths}


def answer_inputs(problems: Sequence[str]) -> dict[str, np.ndarray]:
    """The inputs of ``ANSWER`` for the rows ``problems``.

    Args:
        problems: B problems, e.g. "123+45".
    """
    return {"problem": _column(list(problems), "string", len(problems))}


def score_unit(level: str | None) -> str:
    """What a language model's token is: "character" for character-level models, else "token".

    Args:
        level: the export's ``level`` metadata ("char", "word" or None).
    """
    return "character" if level == "char" else "token"


def score_summary(outputs: Mapping, level: str | None, row: int = 0) -> dict:
    """One row of ``SCORE``'s outputs as numbers: unit, num_tokens, bits_per_token, perplexity
    (2 ** bits per token), nll (nats) and num_unknown.

    Args:
        outputs: the signature's outputs (arrays or tensors, indexed by row).
        level: the export's ``level`` metadata (see ``score_unit``).
        row: which row.
    """
    bits = float(outputs["bits_per_token"][row])
    return {
        "unit": score_unit(level),
        "num_tokens": int(outputs["num_tokens"][row]),
        "bits_per_token": bits,
        "perplexity": math.pow(2.0, bits),
        "nll": float(outputs["nll"][row]),
        "num_unknown": int(outputs["num_unknown"][row]),
    }
