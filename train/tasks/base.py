"""What the training loop needs from an experiment."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_zoneout_train.config import RunConfig, recurrent_spec

__all__ = ["Task", "recurrent_spec"]  # recurrent_spec's home is config; the tasks import it from here too


class Task:
    """An experiment: its model, data, loss, evaluation and export.

    Subclasses set ``metric`` (name of the reported metric; lower is better) and
    implement the methods below. ``batch`` is whatever ``train_batches`` yields.
    """

    metric = "loss"

    def __init__(self, config: RunConfig):
        self.config = config

    def build_model(self, jit_compile: bool | str = "auto") -> keras.Model:
        raise NotImplementedError

    def sample_batch(self):
        """A batch to build the model's variables with."""
        raise NotImplementedError

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        """Global training batches of ``epoch``, the same for the same (seed, epoch)."""
        raise NotImplementedError

    def tokens_per_batch(self) -> int:
        """Input steps per global batch (for the tokens/s figure)."""
        return self.config.batch_size * self.config.seq_len

    def initial_carry(self, batch_size: int) -> list:
        """State carried from batch to batch ([] for none), for ``batch_size`` rows."""
        return []

    def loss(self, model, batch, carry, training: bool):
        """(summed loss, number of items it sums over, new carry) of one batch on one replica."""
        raise NotImplementedError

    def train_metric(self, mean_loss: float) -> float | None:
        """The task's metric from the training loss, when it is a function of it."""
        return None

    def evaluate(self, model, split: str) -> dict:
        """{"loss": ..., self.metric: ..., ...} on ``split`` ("validation" or "test")."""
        raise NotImplementedError

    def lr_may_decay(self) -> bool:
        """Whether a plateau may lower the learning rate now (the seq2seq curriculum: last level only)."""
        return True

    def state_variables(self) -> dict:
        """Task state to checkpoint (e.g. the curriculum level)."""
        return {}

    def end_of_epoch(self, validation: dict) -> dict:
        """Called after validation; returns notes for the metrics (e.g. a curriculum step)."""
        return {}

    def export(self, model, directory, metadata: dict) -> None:
        raise NotImplementedError

    def serving_copy(self, model) -> keras.Model:
        """The same model rebuilt without XLA (serving signatures must run without it), same weights."""
        copy = self.build_model(jit_compile=False)
        copy(self.sample_batch(), training=False)
        copy.set_weights(model.get_weights())
        return copy
