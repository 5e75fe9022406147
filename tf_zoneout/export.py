"""SavedModel exports with text-in/text-out signatures (DESIGN.md section 8).

- ``export_language_model``: ``serving_default`` generates (prompt, max_new_tokens,
  temperature, top_k, top_p, seed -> text, logprob, num_tokens) and ``score`` scores
  (text -> nll, num_tokens, bits_per_token, token_surprisal, lengths, tokens,
  num_unknown). Tokenization and sampling run in the graph.
- ``export_seq2seq``: ``serving_default`` problem -> answer.
- ``export_classifier``: ``serving_default`` pixels [None, 784] -> probabilities, label.

Every export holds ``metadata.json`` (task, vocabulary, metrics, config) next to
``saved_model.pb``. Pass models built with ``jit_compile=False``: serving signatures
must run where XLA is not available.

The signature functions use explicit ``tf.while_loop`` and only static Python control flow,
so they are traced with ``autograph=False``: AutoGraph's source rewriting of everything they
call cost 2-4 s per export and process, and added nothing.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tf_zoneout import sampling
from tf_zoneout.model_base import METADATA_FILE
from tf_zoneout.text_codec import CodecSpec, TextCodec

MAX_NEW_TOKENS = 4096  # hard cap inside the graph; the service enforces its own limit


def _batched(dtype, name):
    return tf.TensorSpec([None], dtype, name=name)


class LanguageModelModule(tf.Module):
    """Generation and scoring around a ``LanguageModel`` and its vocabulary file."""

    def __init__(self, model, codec: TextCodec):
        super().__init__()
        self.model = model
        self.model_variables = list(model.variables)
        self.codec = codec

    def _prefixed(self, texts):
        """(ids [B, L] with the start token first, lengths [B] incl. it, unknown [B])."""
        ids, unknown = self.codec.encode(texts)
        start = tf.fill([tf.shape(texts)[0], 1], tf.constant(self.codec.start_id, tf.int32))
        lengths = tf.cast(ids.row_lengths(), tf.int32) + 1
        return tf.concat([start, ids.to_tensor(0)], axis=1), lengths, unknown

    @tf.function(input_signature=[_batched(tf.string, "text")], autograph=False)
    def score(self, text):
        """Surprisal of every token of each text, read with the state carried through it.

        A text with nothing to score (empty, whitespace-only for word models, or every character
        outside the vocabulary) gives ``num_tokens`` 0, ``nll`` 0, ``bits_per_token`` 0 and an
        empty row; never an error.
        """
        ids, lengths, unknown = self._prefixed(text)
        width = tf.shape(ids)[1] - 1  # the longest text's token count (0 when nothing is scorable)
        # One padding column more, so the model always reads at least one step; cut off again below.
        ids = tf.pad(ids, [[0, 0], [0, 1]])
        inputs, targets = ids[:, :-1], ids[:, 1:]
        num_tokens = lengths - 1
        logits, _ = self.model(inputs, training=False)  # padding is at the end: causal, no mask needed
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(
            labels=targets, logits=tf.cast(logits, tf.float32)
        )[:, :width]
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
        }

    @tf.function(
        input_signature=[
            _batched(tf.string, "prompt"),
            _batched(tf.int32, "max_new_tokens"),
            _batched(tf.float32, "temperature"),
            _batched(tf.int32, "top_k"),
            _batched(tf.float32, "top_p"),
            _batched(tf.int64, "seed"),
        ],
        autograph=False,
    )
    def generate(self, prompt, max_new_tokens, temperature, top_k, top_p, seed):
        """Continue each prompt by up to ``max_new_tokens`` sampled tokens.

        An empty prompt (or one with no known token) continues from the start token alone, as
        at the beginning of a text; ``max_new_tokens`` <= 0 gives the empty string.
        """
        ids, lengths, unknown = self._prefixed(prompt)
        mask = tf.sequence_mask(lengths, tf.shape(ids)[1])
        logits, states = self.model(ids, step_mask=mask, training=False)  # padded steps keep the state
        last = tf.gather(logits, lengths - 1, batch_dims=1)
        counts = tf.clip_by_value(max_new_tokens, 0, MAX_NEW_TOKENS)
        # At least one step, so the token list is never empty (an empty stack has no shape).
        steps = tf.reduce_max(tf.concat([counts, [1]], axis=0))
        batch = tf.shape(prompt)[0]

        def body(t, last, states, tokens, logprob):
            token = sampling.sample_next(last, temperature, top_k, top_p, seed, t)
            step_logprob = tf.gather(tf.nn.log_softmax(tf.cast(last, tf.float32)), token, batch_dims=1)
            logprob += tf.where(t < counts, step_logprob, 0.0)
            logits, states = self.model(token[:, None], states=states, training=False)
            return t + 1, logits[:, 0], states, tokens.write(t, token), logprob

        _, _, _, tokens, logprob = tf.while_loop(
            lambda t, *_: t < steps,
            body,
            (0, last, states, tf.TensorArray(tf.int32, size=steps, element_shape=[None]), tf.zeros([batch])),
        )
        generated = tf.reshape(tf.transpose(tokens.stack()), [batch, steps])
        return {
            "text": self.codec.decode(generated, counts),
            "logprob": logprob,
            "num_tokens": counts,
            "num_unknown": unknown,
        }


class Seq2SeqModule(tf.Module):
    """problem string -> answer string, greedy, for a ``Seq2Seq`` model."""

    def __init__(self, model, symbols: str, problem_len: int, answer_len: int, pad: str, go: str):
        super().__init__()
        self.model = model
        self.model_variables = list(model.variables)
        self.symbols = tf.constant(list(symbols))
        self.table = tf.lookup.StaticHashTable(
            tf.lookup.KeyValueTensorInitializer(self.symbols, tf.range(len(symbols), dtype=tf.int64)), -1
        )
        self.problem_len, self.answer_len = problem_len, answer_len
        self.pad_id, self.go_id = symbols.index(pad), symbols.index(go)

    @tf.function(input_signature=[_batched(tf.string, "problem")], autograph=False)
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


class ClassifierModule(tf.Module):
    """pixels [B, 784] in [0, 1] (row-major image) -> class probabilities and label."""

    def __init__(self, model, permutation=None):
        super().__init__()
        self.model = model
        self.model_variables = list(model.variables)
        self.order = None if permutation is None else tf.constant(permutation, tf.int32)

    @tf.function(input_signature=[tf.TensorSpec([None, 784], tf.float32, name="pixels")], autograph=False)
    def classify(self, pixels):
        if self.order is not None:
            pixels = tf.gather(pixels, self.order, axis=1)
        probabilities = tf.nn.softmax(self.model(pixels[:, :, None], training=False))
        return {"probabilities": probabilities, "label": tf.argmax(probabilities, axis=-1)}


def _save(module, signatures: dict, directory, metadata: dict, extra_files: dict | None = None) -> Path:
    """Save to a temporary folder and move it into place: an export is complete or absent."""
    directory = Path(directory)
    directory.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{directory.name}.", dir=directory.parent))
    try:
        # Serving needs no gradients: do not trace the layers' custom gradients.
        options = tf.saved_model.SaveOptions(experimental_custom_gradients=False)
        tf.saved_model.save(module, str(staging), signatures=signatures, options=options)
        (staging / METADATA_FILE).write_text(json.dumps(metadata, indent=1, sort_keys=True) + "\n")
        for name, text in (extra_files or {}).items():
            (staging / name).write_text(text)
        if directory.exists():
            shutil.rmtree(directory)
        staging.replace(directory)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return directory


def export_language_model(model, vocabulary, directory, metadata: dict) -> Path:
    """Export a ``LanguageModel`` (built with jit_compile=False) and its ``Vocabulary``."""
    with tempfile.TemporaryDirectory() as scratch:
        vocab_file = Path(scratch) / "vocab.txt"
        if any("\n" in t for t in vocabulary.tokens):
            raise ValueError("vocabulary tokens must not contain newlines")
        vocab_file.write_text("".join(t + "\n" for t in vocabulary.tokens))
        spec = CodecSpec.for_dataset(vocabulary.dataset, vocabulary.eol, vocabulary.unknown)
        module = LanguageModelModule(model, TextCodec(vocab_file, spec, list(vocabulary.tokens)))
        metadata = {
            **metadata,
            "kind": "language_model",
            "level": spec.level,
            "vocab_size": len(vocabulary),
            "dataset": vocabulary.dataset,
            "signatures": ["serving_default", "score"],
        }
        signatures = {"serving_default": module.generate, "score": module.score}
        return _save(module, signatures, directory, metadata)


def export_seq2seq(model, symbols, problem_len, answer_len, pad, go, directory, metadata: dict) -> Path:
    """Export a ``Seq2Seq`` model: ``serving_default`` problem -> answer."""
    module = Seq2SeqModule(model, symbols, problem_len, answer_len, pad, go)
    metadata = {**metadata, "kind": "seq2seq", "vocab_size": len(symbols), "signatures": ["serving_default"]}
    return _save(module, {"serving_default": module.answer}, directory, metadata)


def export_classifier(model, permutation, directory, metadata: dict) -> Path:
    """Export a pixel-sequence ``SequenceClassifier``: ``serving_default`` pixels -> label."""
    module = ClassifierModule(model, permutation)
    metadata = {**metadata, "kind": "classifier", "signatures": ["serving_default"]}
    return _save(module, {"serving_default": module.classify}, directory, metadata)
