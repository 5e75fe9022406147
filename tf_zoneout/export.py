"""SavedModel exports with text-in/text-out signatures, whose inputs and outputs are declared in
``tf_zoneout.signatures`` (and listed in docs/guide/export.md).

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
variable ..."), while Python's ``tf.saved_model.load`` hid it. Each export is loaded back through
the C++ loader and checked against the in-memory model before it is moved into place, and its
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

from tf_zoneout import cc_loader, export_graph, sampling
from tf_zoneout.model_base import METADATA_FILE, ModelKind
from tf_zoneout.signatures import (
    ANSWER,
    CLASSIFY,
    GENERATE,
    RESUME,
    SCORE,
    SIGNATURES,
    STEP,
    TOP_LOGPROBS,
    generate_inputs,
    resume_inputs,
)
from tf_zoneout.text_codec import VOCABULARY_FILE, CodecSpec, TextCodec, vocabulary_document

MAX_NEW_TOKENS = 4096  # hard cap inside the graph; the service enforces its own limit


class ExportError(RuntimeError):
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
        }
        # Generation samples, statelessly, from its seed input; the step is also loop- and string-free.
        self.deterministic = (SCORE.key, STEP.key)
        self.loop_free = (STEP.key,)
        texts = ["the company said", "", "  ", "\u00e9\u00df \u2603"]
        generate = generate_inputs(
            texts, max_new_tokens=[8, 0, 3, 1], temperature=[1.0, 0.7, 0.0, 1.0], top_k=[0, 5, 0, 1],
            top_p=[1.0, 0.9, 1.0, 1.0], seed=np.arange(1, len(texts) + 1),
        )  # fmt: skip
        rows = len(texts)
        start = np.zeros([rows, self.state_size], np.float32)
        resume = resume_inputs(
            start + np.linspace(-0.5, 0.5, self.state_size, dtype=np.float32), position=[0, 3, 7, 1],
            max_new_tokens=[4, 0, 3, 2], temperature=[0.0, 1.0, 0.8, 0.0], top_k=[0, 0, 3, 0],
            top_p=[1.0, 1.0, 0.9, 1.0], seed=[3, 4, 5, 6],
        )  # fmt: skip
        tokens = np.array([codec.start_id, 0, model.vocab_size - 1, codec.start_id], np.int32)
        self.warmup = {
            GENERATE.key: generate,
            SCORE.key: {"text": generate["prompt"]},
            RESUME.key: resume,
            STEP.key: {"token": tokens, "state": start},
        }
        # Rows that sample (temperature > 0 and tokens to make); greedy rows are deterministic.
        self.sampled_rows = {
            key: (inputs["temperature"] > 0) & (inputs["max_new_tokens"] > 0)
            for key, inputs in ((GENERATE.key, generate), (RESUME.key, resume))
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

    @tf.function(input_signature=SCORE.tensor_specs(), autograph=False)
    def score(self, text):
        """Surprisal of every token of each text, read with the state carried through it.

        A text with nothing to score (empty, whitespace-only for word models, or every character
        outside the vocabulary) gives ``num_tokens`` 0, ``nll`` 0, ``bits_per_token`` 0 and an
        empty row; never an error. Per token (``[B, W]``, padded past ``lengths``): ``tokens``,
        ``token_surprisal`` (bits), ``token_logprobs`` (nats), and the model's ``TOP_LOGPROBS`` most
        likely tokens at that position, ``top_tokens`` and ``top_logprobs`` (``[B, W, K]``).
        """
        ids, lengths, unknown = self._prefixed(text)
        width = tf.shape(ids)[1] - 1  # the longest text's token count (0 when nothing is scorable)
        # One padding column more, so the model always reads at least one step; cut off again below.
        ids = tf.pad(ids, [[0, 0], [0, 1]])
        inputs, targets = ids[:, :-1], ids[:, 1:]
        num_tokens = lengths - 1
        logits, _ = self.model(inputs, training=False)  # padding is at the end: causal, no mask needed
        logits = tf.cast(logits, tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=targets, logits=logits)[:, :width]
        top_logprobs, top_ids = tf.math.top_k(tf.nn.log_softmax(logits[:, :width]), k=self.top)
        targets = targets[:, :width]
        valid = tf.sequence_mask(num_tokens, width)
        nll = tf.where(valid, nll, 0.0)
        total = tf.reduce_sum(nll, axis=1)
        bits = nll / math.log(2.0)
        count = tf.maximum(tf.cast(num_tokens, tf.float32), 1.0)
        return {
            "nll": total,
            "num_tokens": num_tokens,
            "bits_per_token": tf.reduce_sum(bits, axis=1) / count,
            "token_surprisal": bits,
            "lengths": num_tokens,
            "tokens": tf.where(valid, self.codec.display(targets), ""),
            "num_unknown": unknown,
            "token_logprobs": -nll,
            "top_tokens": tf.where(valid[:, :, None], self.codec.display(top_ids), ""),
            "top_logprobs": tf.where(valid[:, :, None], top_logprobs, 0.0),
        }

    @tf.function(input_signature=GENERATE.tensor_specs(), autograph=False)
    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Continue each prompt by up to ``max_new_tokens`` sampled tokens.

        An empty prompt (or one with no known token) continues from the start token alone, as
        at the beginning of a text; ``max_new_tokens`` <= 0 gives the empty string. Besides the
        text and its total ``logprob``: per generated token (``[B, N]``, padded past
        ``num_tokens``) ``token_ids``, ``tokens`` and ``token_logprobs``, and the ``TOP_LOGPROBS``
        most likely tokens at each step, ``top_tokens`` and ``top_logprobs`` (``[B, N, K]``); and
        the ``state`` after each row's last token, which ``resume`` continues from. Log-probabilities
        are the model's (before temperature, top-k and top-p), in nats.
        """
        ids, lengths, unknown = self._prefixed(prompt)
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
        _, states = self.model(ids, step_mask=mask, training=False)  # padded steps keep the state
        position = tf.zeros_like(max_new_tokens)
        outputs = self._decode(states, position, max_new_tokens, temperature, top_k, top_p, seed)
        return {**outputs, "num_unknown": unknown, "num_prompt_tokens": lengths - 1}

    def _resume(self, state, position, max_new_tokens, temperature, top_k, top_p, seed):
        """``generate`` continued from ``state`` (a ``generate`` or ``resume`` output), the draws
        numbered from ``position`` on: a generation cut into calls makes the tokens one call makes."""
        outputs = self._decode(
            self._split_state(state), position, max_new_tokens, temperature, top_k, top_p, seed
        )
        none = tf.zeros_like(max_new_tokens)
        return {**outputs, "num_unknown": none, "num_prompt_tokens": none}

    def _step(self, token, state):
        """Read one token per row: the next token's log-softmax and the new state."""
        logits, states = self.model.step(token, self._split_state(state))
        return {
            "logprobs": tf.nn.log_softmax(tf.cast(logits, tf.float32)),
            "state": tf.concat(states, axis=1),
        }

    def _decode(self, states, position, max_new_tokens, temperature, top_k, top_p, seed):
        """Sample up to ``max_new_tokens`` tokens per row from ``states`` (the state after the text so
        far), one ``model.step`` per token; draw t of a row is keyed by (seed, position + t). A row's
        state stops moving after its own last token, so ``state`` is where it ends."""
        counts = tf.clip_by_value(max_new_tokens, 0, MAX_NEW_TOKENS)
        # At least one step, so the token list is never empty (an empty stack has no shape).
        steps = tf.reduce_max(tf.concat([counts, [1]], axis=0))
        batch = tf.shape(counts)[0]

        def body(t, last, states, logprob, tokens, token_logprobs, top_logprobs, top_ids):
            token = sampling.sample_next(last, temperature, top_k, top_p, seed, position + t)
            log_probs = tf.nn.log_softmax(last)
            active = t < counts
            step_logprob = tf.where(active, tf.gather(log_probs, token, batch_dims=1), 0.0)
            best_logprobs, best_ids = tf.math.top_k(log_probs, k=self.top)
            logits, stepped = self.model.step(token, states)
            states = [tf.where(active[:, None], new, old) for new, old in zip(stepped, states)]
            written = (
                tokens.write(t, token),
                token_logprobs.write(t, step_logprob),
                top_logprobs.write(t, best_logprobs),
                top_ids.write(t, best_ids),
            )
            return t + 1, tf.cast(logits, tf.float32), states, logprob + step_logprob, *written

        def per_step(dtype, shape):
            return tf.TensorArray(dtype, size=steps, element_shape=shape)

        arrays = (
            per_step(tf.int32, [None]),
            per_step(tf.float32, [None]),
            per_step(tf.float32, [None, self.top]),
            per_step(tf.int32, [None, self.top]),
        )
        last = tf.cast(self.model.logits_from_states(states), tf.float32)
        _, _, states, logprob, *arrays = tf.while_loop(
            lambda t, *_: t < steps, body, (0, last, list(states), tf.zeros([batch]), *arrays)
        )
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
            "tokens": tf.where(valid, self.codec.display(tokens), ""),
            "token_logprobs": token_logprobs,
            "top_tokens": tf.where(valid[:, :, None], self.codec.display(top_ids), ""),
            "top_logprobs": tf.where(valid[:, :, None], top_logprobs, 0.0),
        }


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
    """The module's signatures are its kind's in ``tf_zoneout.signatures``: the same keys, and each
    traced function returns exactly the declared outputs (their inputs come from the declaration).

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
    path = directory / cc_loader.WARMUP_FILE
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


def _check_servable(module, directory: Path) -> None:
    """Load ``directory`` with the C++ loader and run every signature on its warm-up inputs;
    the outputs must equal the in-memory model's: all of them, except the rows a module marks as
    sampled (``sampled_rows``), whose outputs need only the same shapes. A sampled token is a
    discontinuous function of the probabilities: a float sum in another order (1e-7) can move a
    draw across a boundary, so exact agreement there would refuse sound exports now and then; the
    deterministic rows (greedy decoding, and every other signature) are what catch a broken load.

    Raises:
        ExportError: the C++ loader fails, or answers differently.
    """
    try:
        with cc_loader.CcSavedModel(directory) as loaded:
            for signature, inputs in module.warmup.items():
                served = loaded.run(signature, inputs)
                expected = module.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
                exact = ~getattr(module, "sampled_rows", {}).get(signature, np.zeros(0, bool))
                for key, value in expected.items():
                    value, answer = value.numpy(), np.asarray(served[key])
                    if exact.size and value.shape == answer.shape:
                        value, answer = value[exact], answer[exact]
                    if not cc_loader.same_values(value, answer):
                        raise ExportError(
                            f"signature {signature!r} output {key!r} differs between the in-memory model "
                            "and the model loaded by TensorFlow's C++ loader"
                        )
    except cc_loader.CcLoaderError as error:
        raise ExportError(f"the export does not load or run in TensorFlow's C++ loader: {error}") from error


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
        ExportError: the export would not serve portably, or TensorFlow's C++ loader cannot load
            it or answers differently from ``model``.
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
