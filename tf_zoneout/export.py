"""SavedModel exports with text-in/text-out signatures, whose inputs and outputs are declared in
``tf_zoneout.saved_model.signatures`` (and listed in docs/guide/export.md).

- ``export_language_model``: ``serving_default`` generates (``signatures.GENERATE``: prompt,
  max_new_tokens, temperature, top_k, top_p, seed -> text, logprob, num_tokens, ...) and ``score``
  scores (``signatures.SCORE``: text -> nll, num_tokens, bits_per_token, token_surprisal, ...).
  Tokenization and sampling run in the graph.
- ``export_seq2seq``: ``serving_default`` problem -> answer (``signatures.ANSWER``).
- ``export_classifier``: ``serving_default`` pixels [None, 784] -> probabilities, label
  (``signatures.CLASSIFY``).

Every export holds ``metadata.json`` (task, vocabulary, metrics, config) next to
``saved_model.pb``, and TF Serving's warm-up requests (one per signature) in
``assets.extra/tf_serving_warmup_requests``. Pass models built with ``jit_compile=False``:
serving signatures must run where XLA is not available.

The SavedModel is written by Keras's ``ExportArchive``, which saves the variables the signatures
capture (the ``tf.Variable`` inside each Keras variable) and the lookup tables they use. A
``tf.Module`` holding the Keras model (how this module exported before) saves the Keras variable
wrappers instead: TensorFlow's C++ loader (TF Serving, the C API, ``saved_model_cli run``) then
restores the wrappers and runs signatures whose variables were never restored ("Could not find
variable ..."), while Python's ``tf.saved_model.load`` hid it. Each export is loaded back as TF
Serving loads it (TensorFlow's session-based loader, which refuses that export as the C++ loader
does) and checked against the in-memory model before it is moved into place, and its
graphs are checked to hold no device-specific op and no random op where answers must not vary
(``export_graph``).

The signature functions use explicit ``tf.while_loop`` and only static Python control flow,
so they are traced with ``autograph=False``: AutoGraph's source rewriting of everything they
call cost 2-4 s per export and process, and added nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import warnings
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_zoneout.errors import ZoneoutError
from tf_zoneout.saved_model import export_graph, sampling
from tf_zoneout.saved_model.model_base import METADATA_FILE, WARMUP_FILE, ModelKind
from tf_zoneout.saved_model.signatures import (
    ANSWER,
    CLASSIFY,
    GENERATE,
    MAX_NEW_TOKENS,
    READ,
    RESUME,
    SCORE,
    SIGNATURES,
    STEP,
    TOKENIZE,
    TOP_LOGPROBS,
    generate_inputs,
    read_inputs,
    resume_inputs,
    text_inputs,
)
from tf_zoneout.saved_model.text_codec import VOCABULARY_FILE, CodecSpec, TextCodec, vocabulary_document


class ExportError(ZoneoutError, RuntimeError):
    """The SavedModel could not be written, or does not serve as the in-memory model does."""


class LanguageModelModule:
    """Generation, scoring and the token-level step around a ``LanguageModel`` and its vocabulary.

    Args:
        model: the ``LanguageModel`` (jit_compile=False).
        codec: the ``TextCodec`` of its vocabulary (in-graph tokenization).
    """

    kind = ModelKind.LANGUAGE_MODEL

    def __init__(self, model, codec: TextCodec):
        self.model = model
        self.codec = codec
        self.top = min(TOP_LOGPROBS, model.vocab_size)
        self.state_names = ("h", "c") if model.states_per_layer == 2 else ("h",)
        self.state_size = model.num_layers * model.states_per_layer * model.recurrent.units
        state = {"state": (None, self.state_size)}
        # Traced from the model's own state size S, so converters see a static [B, S].
        self.resume = tf.function(self._resume, input_signature=RESUME.tensor_specs(**state), autograph=False)
        self.step = tf.function(self._step, input_signature=STEP.tensor_specs(**state), autograph=False)
        self.resources = [codec]  # its lookup tables and vocabulary asset
        self.signatures = {
            GENERATE.key: self.generate,
            SCORE.key: self.score,
            RESUME.key: self.resume,
            STEP.key: self.step,
            TOKENIZE.key: self.tokenize,
            READ.key: self.read,
        }
        # Generation samples, statelessly, from its seed input; the step is also loop- and string-free.
        self.deterministic = (SCORE.key, STEP.key, TOKENIZE.key, READ.key)
        self.loop_free = (STEP.key,)
        self.warmup = self._warmup_inputs()
        # Rows that sample (temperature > 0 and tokens to make); greedy rows are deterministic.
        self.sampled_rows = {
            key: (self.warmup[key]["temperature"] > 0) & (self.warmup[key]["max_new_tokens"] > 0)
            for key in (GENERATE.key, RESUME.key)
        }

    def _warmup_inputs(self) -> dict:
        """One request per signature (TF Serving's warm-up, and the servability check): empty and
        unknown texts, every sampling option, penalties and a bias."""
        vocab, start_id = self.model.vocab_size, self.codec.start_id
        texts = ["the company said", "", "  ", "\u00e9\u00df \u2603\nof"]
        rows = len(texts)
        bias = np.zeros([rows, vocab], np.float32)
        bias[0, : vocab // 2], bias[2, 1] = -100.0, 5.0
        generate = generate_inputs(
            texts, max_new_tokens=[8, 0, 3, 1], temperature=[1.0, 0.7, 0.0, 1.0], top_k=[0, 5, 0, 1],
            top_p=[1.0, 0.9, 1.0, 1.0], seed=np.arange(1, rows + 1), frequency_penalty=[0.0, 0.0, 1.5, 0.0],
            presence_penalty=[0.5, 0.0, 1.0, 0.0], logit_bias=bias,
        )  # fmt: skip
        start = np.zeros([rows, self.state_size], np.float32)
        resume = resume_inputs(
            start + np.linspace(-0.5, 0.5, self.state_size, dtype=np.float32), position=[0, 3, 7, 1],
            token_counts=np.arange(rows * vocab, dtype=np.int32).reshape(rows, vocab) % 3,
            max_new_tokens=[4, 0, 3, 2], temperature=[0.0, 1.0, 0.8, 0.0], top_k=[0, 0, 3, 0],
            top_p=[1.0, 1.0, 0.9, 1.0], seed=[3, 4, 5, 6], frequency_penalty=[2.0, 0.0, 0.0, 0.0],
            logit_bias=bias[:, :3],
        )  # fmt: skip
        tokens = np.array([start_id, 0, vocab - 1, start_id], np.int32)
        return {
            GENERATE.key: generate,
            SCORE.key: text_inputs(texts),
            RESUME.key: resume,
            STEP.key: {"token": tokens, "state": start},
            TOKENIZE.key: text_inputs(texts),
            READ.key: read_inputs([[start_id, 1, 2, 0], [], [vocab - 1], [2, start_id]]),
        }

    def step_metadata(self) -> dict:
        """What a client of ``step`` needs besides the vocabulary: S, V, the start token and where each
        layer's states lie in the [B, S] state vector."""
        units = self.model.recurrent.units
        names = [(k, name) for k in range(self.model.num_layers) for name in self.state_names]
        return {
            "state_size": self.state_size,
            "vocab_size": self.model.vocab_size,
            "start_id": self.codec.start_id,
            "state_layout": [
                {"layer": k, "state": name, "offset": i * units, "size": units}
                for i, (k, name) in enumerate(names)
            ],
        }

    def _split_state(self, state):
        return tf.split(state, self.model.num_layers * self.model.states_per_layer, axis=1)

    def _prefixed(self, texts):
        """(ids [B, L] with the start token first, lengths [B] incl. it, unknown [B])."""
        ids, unknown = self.codec.encode(texts)
        start = tf.fill([tf.shape(texts)[0], 1], tf.constant(self.codec.start_id, tf.int32))
        lengths = tf.cast(ids.row_lengths(), tf.int32) + 1
        return tf.concat([start, ids.to_tensor(0)], axis=1), lengths, unknown

    def _read(self, ids, lengths) -> dict:
        """Read ids [B, W] int32 (row b's first ``lengths[b]``) from the zero state.

        Returns ``state`` (after each row's last token) and, per position i ([B, W], [B, W, K]):
        ``token_logprobs`` (token i given the tokens before it; 0 where nothing precedes it or past
        the row's end), ``top_logprobs`` and ``top_ids`` (the likeliest tokens at i), ``tokens`` (token
        i as text) and ``valid`` (1 <= i < length: the positions that have a log-probability).
        """
        width = tf.shape(ids)[1]
        # One padding column more, so the model always reads at least one step.
        padded = tf.pad(ids, [[0, 0], [0, 1]])
        logits, states = self.model(padded, step_mask=tf.sequence_mask(lengths, width + 1), training=False)
        after = tf.nn.log_softmax(tf.cast(logits[:, :width], tf.float32))  # after token j: of token j + 1
        before = tf.concat([tf.zeros_like(after[:, :1]), after[:, :-1]], axis=1)  # of token i
        valid = tf.sequence_mask(lengths, width) & (tf.range(width) >= 1)[None, :]
        top_logprobs, top_ids = tf.math.top_k(before, k=self.top)
        return {
            "state": tf.concat(states, axis=1),
            "token_logprobs": tf.where(valid, tf.gather(before, ids, batch_dims=2), 0.0),
            "top_logprobs": tf.where(valid[:, :, None], top_logprobs, 0.0),
            "top_ids": top_ids,
            "tokens": tf.where(tf.sequence_mask(lengths, width), self.codec.display(ids), ""),
            "valid": valid,
        }

    def _per_token(self, read: dict, first: int) -> dict:
        """The ``_PER_TOKEN`` outputs of a ``_read``, from its column ``first`` on."""
        valid = read["valid"][:, first:]
        return {
            "tokens": read["tokens"][:, first:],
            "token_logprobs": read["token_logprobs"][:, first:],
            "top_tokens": tf.where(valid[:, :, None], self.codec.display(read["top_ids"][:, first:]), ""),
            "top_logprobs": read["top_logprobs"][:, first:],
        }

    @tf.function(input_signature=SCORE.tensor_specs(), autograph=False)
    def score(self, text):
        """Surprisal of every token of each text, read after the start token with the state carried.

        A text with nothing to score (empty, whitespace-only for word models, or every character
        outside the vocabulary) gives ``num_tokens`` 0, ``nll`` 0, ``bits_per_token`` 0 and an
        empty row; never an error. Per token (``[B, W]``, padded past ``lengths``): ``tokens``,
        ``token_surprisal`` (bits), ``token_logprobs`` (nats), and the model's ``TOP_LOGPROBS`` most
        likely tokens at that position, ``top_tokens`` and ``top_logprobs`` (``[B, W, K]``).
        """
        ids, lengths, unknown = self._prefixed(text)
        per_token = self._per_token(self._read(ids, lengths), 1)  # the start token is column 0
        bits = -per_token["token_logprobs"] / math.log(2.0)
        num_tokens = lengths - 1
        count = tf.maximum(tf.cast(num_tokens, tf.float32), 1.0)
        return {
            **per_token,
            "nll": -tf.reduce_sum(per_token["token_logprobs"], axis=1),
            "num_tokens": num_tokens,
            "bits_per_token": tf.reduce_sum(bits, axis=1) / count,
            "token_surprisal": bits,
            "lengths": num_tokens,
            "num_unknown": unknown,
        }

    @tf.function(input_signature=TOKENIZE.tensor_specs(), autograph=False)
    def tokenize(self, text):
        """Each text's token ids as ``score`` and ``serving_default`` read them (without the start
        token), padded with 0, and each token as text."""
        ids, unknown = self.codec.encode(text)
        lengths = tf.cast(ids.row_lengths(), tf.int32)
        ids = ids.to_tensor(0)
        return {
            "token_ids": ids,
            "num_tokens": lengths,
            "num_unknown": unknown,
            "tokens": tf.where(tf.sequence_mask(lengths, tf.shape(ids)[1]), self.codec.display(ids), ""),
        }

    @tf.function(input_signature=READ.tensor_specs(), autograph=False)
    def read(self, token_ids, num_tokens):
        """Read each row's token ids from the zero state (no start token is added: a client that wants
        the text read as ``score`` reads it sends ``start_id`` first). Every token but the first gets
        its log-probability given the tokens before it; ``state`` is where ``resume`` continues."""
        read = self._read(token_ids, num_tokens)
        return {
            **self._per_token(read, 0),
            "text": self.codec.decode(token_ids, num_tokens, continuation=False),
            "state": read["state"],
        }

    @tf.function(input_signature=GENERATE.tensor_specs(), autograph=False)
    def generate(
        self,
        prompt,
        max_new_tokens,
        temperature,
        top_k,
        top_p,
        seed,
        frequency_penalty,
        presence_penalty,
        logit_bias,
    ):
        """Continue each prompt by up to ``max_new_tokens`` sampled tokens.

        An empty prompt (or one with no known token) continues from the start token alone, as
        at the beginning of a text; ``max_new_tokens`` <= 0 gives the empty string. Besides the
        text and its total ``logprob``: per generated token (``[B, N]``, padded past
        ``num_tokens``) ``token_ids``, ``tokens`` and ``token_logprobs``, and the ``TOP_LOGPROBS``
        most likely tokens at each step, ``top_tokens`` and ``top_logprobs`` (``[B, N, K]``); and
        the ``state`` after each row's last token and the ``token_counts``, which ``resume``
        continues from. Log-probabilities are the model's (before the penalties, bias, temperature,
        top-k and top-p that choose the token), in nats.
        """
        ids, lengths, unknown = self._prefixed(prompt)
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
        _, states = self.model(ids, step_mask=mask, training=False)  # padded steps keep the state
        position = tf.zeros_like(max_new_tokens)
        none_yet = tf.zeros([tf.shape(ids)[0], 0], tf.int32)
        choice = (temperature, top_k, top_p, seed, frequency_penalty, presence_penalty, logit_bias)
        outputs = self._decode(states, position, none_yet, max_new_tokens, *choice)
        return {**outputs, "num_unknown": unknown, "num_prompt_tokens": lengths - 1}

    def _resume(
        self, state, position, token_counts, max_new_tokens, temperature, top_k, top_p, seed,
        frequency_penalty, presence_penalty, logit_bias,
    ):  # fmt: skip
        """``generate`` continued from ``state`` and ``token_counts`` (a ``generate``, ``resume`` or
        ``read`` output), the draws numbered from ``position`` on: a generation cut into calls makes
        the tokens one call makes."""
        choice = (temperature, top_k, top_p, seed, frequency_penalty, presence_penalty, logit_bias)
        outputs = self._decode(self._split_state(state), position, token_counts, max_new_tokens, *choice)
        none = tf.zeros_like(max_new_tokens)
        return {**outputs, "num_unknown": none, "num_prompt_tokens": none}

    def _step(self, token, state):
        """Read one token per row: the next token's log-softmax and the new state."""
        logits, states = self.model.step(token, self._split_state(state))
        return {
            "logprobs": tf.nn.log_softmax(tf.cast(logits, tf.float32)),
            "state": tf.concat(states, axis=1),
        }

    def _decode(
        self, states, position, token_counts, max_new_tokens, temperature, top_k, top_p, seed,
        frequency, presence, bias,
    ):  # fmt: skip
        """Sample up to ``max_new_tokens`` tokens per row from ``states`` (the state after the text so
        far), one ``model.step`` per token; draw t of a row is keyed by (seed, position + t). The
        token is drawn from the logits plus ``bias`` less the penalties of the ``counts`` (OpenAI's
        frequency and presence penalties); ``counts`` and ``bias`` have up to V columns (zeros past
        them). A row's state stops moving after its own last token, so ``state`` is where it ends."""
        counts = tf.clip_by_value(max_new_tokens, 0, MAX_NEW_TOKENS)
        token_counts, bias = (_widened(m, self.model.vocab_size) for m in (token_counts, bias))
        # At least one step, so the token list is never empty (an empty stack has no shape).
        steps = tf.reduce_max(tf.concat([counts, [1]], axis=0))
        batch = tf.shape(counts)[0]

        def body(t, last, states, token_counts, logprob, tokens, token_logprobs, top_logprobs, top_ids):
            seen = tf.cast(token_counts, tf.float32)
            penalty = frequency[:, None] * seen + presence[:, None] * tf.cast(token_counts > 0, tf.float32)
            token = sampling.sample_next(last + bias - penalty, temperature, top_k, top_p, seed, position + t)
            log_probs = tf.nn.log_softmax(last)
            active = t < counts
            step_logprob = tf.where(active, tf.gather(log_probs, token, batch_dims=1), 0.0)
            best_logprobs, best_ids = tf.math.top_k(log_probs, k=self.top)
            logits, stepped = self.model.step(token, states)
            states = [tf.where(active[:, None], new, old) for new, old in zip(stepped, states)]
            drawn = (
                tf.one_hot(token, self.model.vocab_size, dtype=tf.int32) * tf.cast(active, tf.int32)[:, None]
            )
            written = (
                tokens.write(t, token),
                token_logprobs.write(t, step_logprob),
                top_logprobs.write(t, best_logprobs),
                top_ids.write(t, best_ids),
            )
            last = tf.cast(logits, tf.float32)
            return t + 1, last, states, token_counts + drawn, logprob + step_logprob, *written

        def per_step(dtype, shape):
            return tf.TensorArray(dtype, size=steps, element_shape=shape)

        arrays = (
            per_step(tf.int32, [None]),
            per_step(tf.float32, [None]),
            per_step(tf.float32, [None, self.top]),
            per_step(tf.int32, [None, self.top]),
        )
        last = tf.cast(self.model.logits_from_states(states), tf.float32)
        start = (0, last, list(states), token_counts, tf.zeros([batch]), *arrays)
        _, _, states, token_counts, logprob, *arrays = tf.while_loop(lambda t, *_: t < steps, body, start)
        # Each [steps, B, ...] stack -> [B, steps, ...].
        tokens, token_logprobs = (tf.transpose(a.stack(), [1, 0]) for a in arrays[:2])
        top_logprobs, top_ids = (tf.transpose(a.stack(), [1, 0, 2]) for a in arrays[2:])
        valid = tf.sequence_mask(counts, steps)
        return {
            "text": self.codec.decode(tokens, counts),
            "logprob": logprob,
            "num_tokens": counts,
            "token_ids": tf.where(valid, tokens, 0),
            "state": tf.concat(states, axis=1),
            "token_counts": token_counts,
            "tokens": tf.where(valid, self.codec.display(tokens), ""),
            "token_logprobs": token_logprobs,
            "top_tokens": tf.where(valid[:, :, None], self.codec.display(top_ids), ""),
            "top_logprobs": tf.where(valid[:, :, None], top_logprobs, 0.0),
        }


def _widened(matrix, width: int):
    """[B, N] (N <= width) -> [B, width], zeros past its columns."""
    return tf.pad(matrix, [[0, 0], [0, width - tf.shape(matrix)[1]]])


class Seq2SeqModule:
    """problem string -> answer string, greedy, for a ``Seq2Seq`` model.

    Args:
        model: the ``Seq2Seq`` model (jit_compile=False).
        symbols: its symbol string (index = token id).
        problem_len: the padded problem length it was trained with.
        answer_len: the answer length it decodes.
        pad: its padding symbol.
        go: its start symbol.
    """

    kind = ModelKind.SEQ2SEQ

    def __init__(self, model, symbols: str, problem_len: int, answer_len: int, pad: str, go: str):
        self.model = model
        self.symbols = tf.constant(list(symbols))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.symbols, tf.range(len(symbols), dtype=tf.int64)), -1
        )
        self.problem_len, self.answer_len = problem_len, answer_len
        self.pad_id, self.go_id = symbols.index(pad), symbols.index(go)
        self.resources = [self.table]
        self.signatures = {ANSWER.key: self.answer}
        self.deterministic = (ANSWER.key,)  # greedy decoding
        problems = [symbols[1] + "+" + symbols[2], "", " ", symbols * 3, "\u2603"]
        self.warmup = {ANSWER.key: {"problem": np.array([p.encode() for p in problems], dtype=object)}}

    @tf.function(input_signature=ANSWER.tensor_specs(), autograph=False)
    def answer(self, problem):
        chars = tf.strings.unicode_split(tf.strings.regex_replace(problem, r"\s", ""), "UTF-8")
        # On flat values: element-wise ops on ragged tensors add many shape assertions to the graph.
        ids = self.table.lookup(chars.flat_values)
        keep = (ids >= 0) & (ids != self.pad_id) & (ids != self.go_id)
        ids = tf.RaggedTensor.from_value_rowids(
            tf.boolean_mask(ids, keep),
            tf.boolean_mask(chars.value_rowids(), keep),
            chars.nrows(),
            validate=False,
        )
        # Left-pad (or keep the last problem_len symbols of) each problem.
        reversed_ids = tf.reverse(ids, axis=[1]).to_tensor(self.pad_id, shape=[None, self.problem_len])
        problems = tf.cast(tf.reverse(reversed_ids, axis=[1]), tf.int32)
        answer_ids = self.model.greedy(problems, self.answer_len, self.go_id)
        # Everything from the first pad on is padding.
        length = tf.argmax(
            tf.concat(
                [tf.cast(answer_ids == self.pad_id, tf.int32), tf.ones_like(answer_ids[:, :1])], axis=1
            ),
            axis=1,
            output_type=tf.int32,
        )
        chars = tf.where(tf.sequence_mask(length, self.answer_len), tf.gather(self.symbols, answer_ids), "")
        return {"answer": tf.strings.reduce_join(chars, axis=1)}


class ClassifierModule:
    """pixels [B, 784] in [0, 1] (row-major image) -> class probabilities and label.

    Args:
        model: the ``SequenceClassifier`` (jit_compile=False).
        permutation: the [784] pixel order it reads (pMNIST), or None.
    """

    kind = ModelKind.CLASSIFIER

    def __init__(self, model, permutation=None):
        self.model = model
        self.order = None if permutation is None else tf.constant(permutation, tf.int32)
        self.resources = []
        self.signatures = {CLASSIFY.key: self.classify}
        self.deterministic = (CLASSIFY.key,)
        pixels = np.stack([np.zeros(784), np.linspace(0.0, 1.0, 784)]).astype(np.float32)
        self.warmup = {CLASSIFY.key: {"pixels": pixels}}

    @tf.function(input_signature=CLASSIFY.tensor_specs(), autograph=False)
    def classify(self, pixels):
        if self.order is not None:
            pixels = tf.gather(pixels, self.order, axis=1)
        probabilities = tf.nn.softmax(self.model(pixels[:, :, None], training=False))
        return {"probabilities": probabilities, "label": tf.argmax(probabilities, axis=-1)}


def _check_declared(module) -> None:
    """The module's signatures are its kind's in ``tf_zoneout.saved_model.signatures``: the same keys,
    and each traced function returns exactly the declared outputs (their inputs come from the
    declaration).

    Raises:
        ExportError: a signature is missing, extra or returns other outputs.
    """
    declared = {signature.key: signature for signature in SIGNATURES[module.kind]}
    if set(declared) != set(module.signatures):
        raise ExportError(
            f"a {module.kind} export has the signatures {sorted(declared)}; got {sorted(module.signatures)}"
        )
    for key, function in module.signatures.items():
        outputs = function.get_concrete_function().structured_outputs  # traced from its input_signature
        try:
            declared[key].check_outputs(outputs)
        except ValueError as error:
            raise ExportError(str(error)) from None


def _write_archive(module, directory: Path) -> None:
    """The SavedModel of ``module``'s signatures, through Keras's ``ExportArchive``.

    Only the signatures and ``module.resources`` (lookup tables, assets) are tracked: the archive
    adds every variable the signatures capture by itself. Tracking the Keras model as well would
    store each weight twice (once more as its Keras variable wrapper).
    """
    import keras

    _check_declared(module)
    archive = keras.export.ExportArchive()
    for resource in module.resources:
        archive.track(resource)
    for name, function in module.signatures.items():
        archive.add_endpoint(name, function)
    # Serving needs no gradients: do not trace the layers' custom gradients.
    options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
    archive.write_out(str(directory), options=options, verbose=False)


def _write_warmup(module, directory: Path) -> Path | None:
    """TF Serving's warm-up file: one ``PredictionLog`` per signature, with ``module.warmup``'s inputs.

    Written when ``tensorflow-serving-api`` (the experiments and serve extras) is installed; else
    None and a warning (TF Serving then serves the model without warming it up).
    """
    try:
        from tensorflow_serving.apis import predict_pb2, prediction_log_pb2
    except ImportError:
        warnings.warn(
            "tensorflow-serving-api is not installed: the export has no TF Serving warm-up requests "
            "(pip install 'tf-zoneout[serve]')",
            stacklevel=3,
        )
        return None
    path = directory / WARMUP_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    with tf.io.TFRecordWriter(str(path)) as writer:
        for signature, inputs in module.warmup.items():
            request = predict_pb2.PredictRequest()
            request.model_spec.signature_name = signature
            for key, value in inputs.items():
                request.inputs[key].CopyFrom(tf.make_tensor_proto(value))
            log = prediction_log_pb2.PredictionLog(predict_log=prediction_log_pb2.PredictLog(request=request))
            writer.write(log.SerializeToString())
    return path


def same_values(expected: np.ndarray, actual: np.ndarray, tolerance: float = 1e-5) -> bool:
    """Whether two signature outputs agree: the same shape, equal strings and integers, floats within
    ``tolerance`` (relative and absolute: the same kernels can sum in another order).

    Args:
        expected: the in-memory model's output.
        actual: the loaded model's output.
        tolerance: for floats, the relative and absolute tolerance.
    """
    expected, actual = np.asarray(expected), np.asarray(actual)
    if expected.shape != actual.shape:
        return False
    if expected.dtype.kind == "f":
        return bool(np.allclose(expected, actual, rtol=tolerance, atol=tolerance))
    return bool(np.array_equal(expected, actual))


def _check_servable(module, directory: Path) -> None:
    """Load ``directory`` as TF Serving does and run every signature on its warm-up inputs; the
    outputs must equal the in-memory model's: all of them, except the rows a module marks as
    sampled (``sampled_rows``), whose outputs need only the same shapes. A sampled token is a
    discontinuous function of the probabilities: a float sum in another order (1e-7) can move a
    draw across a boundary, so exact agreement there would refuse sound exports now and then; the
    deterministic rows (greedy decoding, and every other signature) are what catch a broken load.

    The loader is TensorFlow's session-based one (``tf.compat.v1.saved_model.load`` in a fresh
    graph): the variables' restore op, then the init op, as TF Serving's C++ loader runs them. It
    refuses what the C++ loader refused and Python's ``tf.saved_model.load`` hid (the Keras variable
    wrappers of a ``tf.Module`` export: "Could not find variable"); ``tests/test_tf_serving_loader.py``
    runs every export through the C++ loader itself.

    Raises:
        ExportError: the loader fails, or answers differently.
    """
    expected = {
        signature: {k: v.numpy() for k, v in module.signatures[signature](**_tensors(inputs)).items()}
        for signature, inputs in module.warmup.items()
    }
    try:
        with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
            meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(directory))
            for signature, inputs in module.warmup.items():
                definition = meta_graph.signature_def[signature]
                fetches = {k: v.name for k, v in definition.outputs.items()}
                served = session.run(fetches, {definition.inputs[k].name: v for k, v in inputs.items()})
                exact = ~getattr(module, "sampled_rows", {}).get(signature, np.zeros(0, bool))
                for key, value in expected[signature].items():
                    answer = np.asarray(served[key])
                    if exact.size and value.shape == answer.shape:
                        value, answer = value[exact], answer[exact]
                    if not same_values(value, answer):
                        raise ExportError(
                            f"signature {signature!r} output {key!r} differs between the in-memory model "
                            "and the model loaded as TF Serving loads it"
                        )
    except tf.errors.OpError as error:
        raise ExportError(
            f"the export does not load or run as TF Serving loads it: {error.message}"
        ) from error


def _tensors(inputs: dict) -> dict:
    return {k: tf.constant(v) for k, v in inputs.items()}


def _save(module, directory, metadata: dict, files: dict[str, str] | None = None) -> Path:
    """Save to a temporary folder, check it and move it into place: an export is complete or absent.

    ``files``: more files for the export's folder, {name: text} (the vocabulary's JSON)."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        _write_archive(module, staging)
        _write_warmup(module, staging)
        problems = export_graph.problems(staging, module.deterministic, getattr(module, "loop_free", ()))
        if problems:
            raise ExportError(
                "the export would not serve portably or deterministically:\n" + "\n".join(problems)
            )
        _check_servable(module, staging)
        metadata = {**metadata, "signatures": sorted(module.signatures)}
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
        for name, text in (files or {}).items():
            (staging / name).write_text(text)
        if directory.exists():
            shutil.rmtree(directory)
        staging.replace(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def export_language_model(model, vocabulary, directory, metadata: dict) -> Path:
    """Export a ``LanguageModel`` and its ``Vocabulary``: ``serving_default`` generates, ``score``
    scores (``signatures.GENERATE``, ``signatures.SCORE``).

    Args:
        model: a built ``LanguageModel`` whose layers use jit_compile=False.
        vocabulary: its ``Vocabulary`` (written into the export as an asset).
        directory: the export folder; replaced as a whole once the new export is checked.
        metadata: what ``metadata.json`` records (task, metrics, config); kind, level, vocabulary
            size and data set are added.

    Returns:
        ``directory``.

    Raises:
        ValueError: a vocabulary token contains a newline.
        ExportError: the export would not serve portably, or TF Serving's loader cannot load it
            or answers differently from ``model``.
    """
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file = Path(scratch) / "vocab.txt"
        if any("\n" in t for t in vocabulary.tokens):
            raise ValueError("vocabulary tokens must not contain newlines")
        vocab_file.write_text("".join(t + "\n" for t in vocabulary.tokens))
        spec = CodecSpec.for_dataset(vocabulary.dataset, vocabulary.eol, vocabulary.unknown)
        module = LanguageModelModule(model, TextCodec(vocab_file, spec, list(vocabulary.tokens)))
        metadata = {
            **metadata,
            "kind": ModelKind.LANGUAGE_MODEL.value,
            "level": spec.level,
            "vocab_size": len(vocabulary),
            "dataset": vocabulary.dataset,
            "step": {**module.step_metadata(), "vocabulary_file": VOCABULARY_FILE},
        }
        document = vocabulary_document(vocabulary.tokens, spec)
        return _save(module, directory, metadata, {VOCABULARY_FILE: json.dumps(document, indent=1) + "\n"})


def export_seq2seq(model, symbols, problem_len, answer_len, pad, go, directory, metadata: dict) -> Path:
    """Export a ``Seq2Seq`` model: ``serving_default`` problem -> answer (``signatures.ANSWER``).

    Args:
        model: a built ``Seq2Seq`` (jit_compile=False).
        symbols: its symbol string (index = token id).
        problem_len: the padded problem length it was trained with.
        answer_len: the answer length it decodes.
        pad: its padding symbol.
        go: its start symbol.
        directory: as for ``export_language_model``.
        metadata: as for ``export_language_model``.

    Raises:
        ExportError: as for ``export_language_model``.
    """
    module = Seq2SeqModule(model, symbols, problem_len, answer_len, pad, go)
    metadata = {**metadata, "kind": ModelKind.SEQ2SEQ.value, "vocab_size": len(symbols)}
    return _save(module, directory, metadata)


def export_classifier(model, permutation, directory, metadata: dict) -> Path:
    """Export a pixel-sequence ``SequenceClassifier``: ``serving_default`` pixels -> probabilities,
    label (``signatures.CLASSIFY``).

    Args:
        model: a built ``SequenceClassifier`` reading [B, 784, 1] (jit_compile=False).
        permutation: the [784] pixel order it was trained with (pMNIST), or None; applied inside
            the signature, so clients send images row-major.
        directory: as for ``export_language_model``.
        metadata: as for ``export_language_model``.

    Raises:
        ExportError: as for ``export_language_model``.
    """
    module = ClassifierModule(model, permutation)
    metadata = {**metadata, "kind": ModelKind.CLASSIFIER.value}
    return _save(module, directory, metadata)
