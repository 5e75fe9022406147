"""seq2seq: the toy addition task (or learning to execute), exact-match sequence error, curriculum."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_zoneout import export as export_lib
from tf_zoneout.data import seq2seq as data
from tf_zoneout.models import Seq2Seq
from tf_zoneout_train.tasks.base import Task, recurrent_spec


class Seq2SeqTask(Task):
    """Encoder-decoder trained with teacher forcing, evaluated by greedy decoding.

    With ``curriculum``, numbers start at ``start_level`` digits and grow by one
    (up to ``max_level``) whenever the validation sequence error falls below
    ``curriculum_threshold``.
    """

    metric = "sequence_error"

    def __init__(self, config, tfds_dir=None, data_dir=None):
        """``tfds_dir`` and ``data_dir`` are unused: the problems are generated."""
        super().__init__(config)
        self.symbols = data.ADDITION_SYMBOLS if config.seq2seq_task == "addition" else data.PROGRAM_SYMBOLS
        self.go_id = self.symbols.index(data.GO)
        self.level = tf.Variable(
            config.start_level if config.curriculum else config.max_level, dtype=tf.int64
        )
        # Padded sizes: fixed for addition; for programs, the longest at the top level.
        widest = data.generate(config.seq2seq_task, "validation", 500, config.seed, config.max_level)
        problems, answers = data.encode(widest, config.seq2seq_task)
        self.problem_len = problems.shape[1] + (0 if config.seq2seq_task == "addition" else 8)
        self.answer_len = answers.shape[1] + (0 if config.seq2seq_task == "addition" else 2)

    def build_model(self, jit_compile: bool | str = "auto"):
        c = self.config
        return Seq2Seq(
            len(self.symbols),
            c.embedding_dim,
            recurrent_spec(c, jit_compile=jit_compile),
            num_layers=c.num_layers,
            seed=c.seed,
        )

    def sample_batch(self):
        return tf.zeros([1, self.problem_len], tf.int32), tf.zeros([1, self.answer_len], tf.int32)

    def tokens_per_batch(self) -> int:
        return self.config.batch_size * (self.problem_len + self.answer_len)

    def _arrays(self, split, count, seed):
        examples = data.generate(self.config.seq2seq_task, split, count, seed, int(self.level.numpy()))
        problems, answers = data.encode(examples, self.config.seq2seq_task, self.problem_len, self.answer_len)
        decoder_inputs = np.concatenate([np.full_like(answers[:, :1], self.go_id), answers[:, :-1]], axis=1)
        return (problems, decoder_inputs), answers

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        c = self.config
        inputs, answers = self._arrays("train", c.train_examples, c.seed * 100_003 + epoch)
        return tf.data.Dataset.from_tensor_slices((inputs, answers)).batch(c.batch_size, drop_remainder=True)

    def loss(self, model, batch, carry, training: bool):
        inputs, answers = batch
        logits = tf.cast(model(inputs, training=training), tf.float32)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=answers, logits=logits)
        return tf.reduce_sum(nll), tf.cast(tf.size(answers), tf.float32), []

    def evaluate(self, model, split: str) -> dict:
        (problems, decoder_inputs), answers = self._arrays(split, self.config.eval_examples, self.config.seed)
        logits = tf.cast(model((problems, decoder_inputs), training=False), tf.float32)
        loss = float(
            tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=answers, logits=logits))
        )
        decoded = model.greedy(tf.constant(problems), self.answer_len, self.go_id).numpy()
        exact = np.all(decoded == answers, axis=1)
        return {"loss": loss, "sequence_error": float(1.0 - exact.mean()), "level": int(self.level.numpy())}

    def lr_may_decay(self) -> bool:
        """The original code lowers the learning rate only once the curriculum is at its last level."""
        return not self.config.curriculum or int(self.level.numpy()) >= self.config.max_level

    def state_variables(self) -> dict:
        return {"curriculum_level": self.level}

    def end_of_epoch(self, validation: dict) -> dict:
        c = self.config
        level = int(self.level.numpy())
        if c.curriculum and validation["sequence_error"] < c.curriculum_threshold and level < c.max_level:
            self.level.assign(level + 1)
            # The metric is not comparable across levels: early stopping starts over.
            return {"curriculum_level": level + 1, "reset_best": True}
        return {"curriculum_level": level}

    def export(self, model, directory, metadata: dict) -> None:
        serving_model = self.serving_copy(model)
        export_lib.export_seq2seq(
            serving_model,
            self.symbols,
            self.problem_len,
            self.answer_len,
            data.PAD,
            data.GO,
            directory,
            metadata,
        )
