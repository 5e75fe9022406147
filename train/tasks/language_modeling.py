"""char_ptb, word_ptb and text8: next-token language models, BPC or perplexity."""

from __future__ import annotations

import math

import numpy as np
import tensorflow as tf

import tf_zoneout.data  # noqa: F401  (registers the TFDS builders)
from tf_zoneout import export as export_lib
from tf_zoneout.data import lm
from tf_zoneout.models import LanguageModel
from tf_zoneout.models.language_model import token_nll
from tf_zoneout_train.config import ConfigError
from tf_zoneout_train.task_registry import task_info
from tf_zoneout_train.tasks.base import Task, recurrent_spec

EVAL_ROWS = 10  # parallel streams when the state is carried through an evaluation text


class LanguageModelingTask(Task):
    """A stacked-RNN language model on a PTB or text8 token stream.

    Training batches are the original code's fresh-state chunks (``batching=chunks``)
    or contiguous rows whose state is carried from batch to batch
    (``batching=contiguous``, Zaremba et al.). Evaluation reports both protocols.
    """

    def __init__(self, config, tfds_dir=None, data_dir=None):
        super().__init__(config)
        if config.cell == "bn_lstm":
            raise ConfigError(
                "recurrent batch normalization is available for pmnist; its per-time-step statistics "
                "do not suit generation from a language model"
            )
        info = task_info(config.task)
        self.dataset, self.metric = info.dataset, info.metric
        self.tfds_dir, self.data_dir = tfds_dir, data_dir
        self.vocabulary = lm.load_vocabulary(self.dataset, tfds_dir, data_dir)
        self._ids = {}
        self._eval_step = None

    def ids(self, split: str) -> np.ndarray:
        if split not in self._ids:
            ids = lm.token_ids(self.dataset, split, self.vocabulary, self.tfds_dir, self.data_dir)
            if split == "train" and self.config.train_fraction < 1:
                ids = ids[: max(int(len(ids) * self.config.train_fraction), 2 * self.config.seq_len + 2)]
            self._ids[split] = ids
        return self._ids[split]

    def build_model(self, jit_compile: bool | str = "auto"):
        c = self.config
        return LanguageModel(
            len(self.vocabulary),
            c.embedding_dim,
            recurrent_spec(c, jit_compile=jit_compile),
            num_layers=c.num_layers,
            dropout=c.dropout,
            seed=c.seed,
        )

    def sample_batch(self):
        return tf.zeros([1, self.config.seq_len], tf.int32)

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        c = self.config
        if c.batching == "contiguous":
            return lm.contiguous_batches(self.ids("train"), c.batch_size, c.seq_len)
        return lm.chunk_batches(self.ids("train"), c.batch_size, c.seq_len, seed=c.seed, epoch=epoch)

    def initial_carry(self, batch_size: int) -> list:
        if self.config.batching != "contiguous":
            return []
        per_layer = 2 if self.config.cell == "lstm" else 1
        return [np.zeros([batch_size, self.config.units], np.float32)] * (per_layer * self.config.num_layers)

    def loss(self, model, batch, carry, training: bool):
        x, y = batch
        logits, states = model(x, states=list(carry) if carry else None, training=training)
        nll = token_nll(logits, y)
        count = tf.cast(tf.size(y), tf.float32)
        return tf.reduce_sum(nll), count, (states if carry else [])

    def metric_of(self, mean_nll: float) -> float:
        """BPC (nats -> bits) or perplexity from the mean NLL per token."""
        if self.metric == "perplexity":
            return math.exp(min(mean_nll, 50.0))
        return mean_nll / math.log(2.0)

    def train_metric(self, mean_loss: float) -> float | None:
        return self.metric_of(mean_loss)

    def _nll(self, model, batches, carried: bool) -> tuple[float, int]:
        if self._eval_step is None:

            @tf.function(autograph=False)
            def step(x, y, states):
                logits, new_states = model(x, states=states, training=False)
                return tf.reduce_sum(token_nll(logits, y)), new_states

            self._eval_step = step
        total, count, states = 0.0, 0, None
        limit = self.config.eval_batches or None
        for i, (x, y) in enumerate(batches):
            if limit and i >= limit:
                break
            if states is None or not carried:
                states = model.zero_states(tf.shape(x)[0])
            nll, new_states = self._eval_step(x, y, states)
            states = new_states if carried else None
            total += float(nll)
            count += int(tf.size(y))
        return total, count

    def evaluate(self, model, split: str) -> dict:
        c = self.config
        ids = self.ids(split)
        rows = min(EVAL_ROWS, max(1, len(ids) // (c.seq_len + 1)))
        carried_nll, carried_count = self._nll(
            model, lm.contiguous_batches(ids, rows, c.seq_len), carried=True
        )
        fresh_nll, fresh_count = self._nll(
            model, lm.chunk_batches(ids, c.batch_size, c.seq_len, drop_remainder=False), carried=False
        )
        carried_loss, fresh_loss = carried_nll / carried_count, fresh_nll / fresh_count
        return {
            "loss": carried_loss,
            self.metric: self.metric_of(carried_loss),
            "loss_fresh_state": fresh_loss,
            f"{self.metric}_fresh_state": self.metric_of(fresh_loss),
            "tokens": carried_count,
        }

    def export(self, model, directory, metadata: dict) -> None:
        serving_model = self.serving_copy(model)
        export_lib.export_language_model(serving_model, self.vocabulary, directory, metadata)
