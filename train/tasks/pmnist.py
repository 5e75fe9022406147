"""pmnist: (permuted) pixel-by-pixel MNIST classification, error rate."""

from __future__ import annotations

import math

import tensorflow as tf

import tf_zoneout.data  # noqa: F401  (registers the TFDS builders)
from tf_zoneout import export as export_lib
from tf_zoneout.data import pmnist
from tf_zoneout.models import SequenceClassifier
from tf_zoneout_train.tasks.base import Task, recurrent_spec

TRAIN_IMAGES = 50_000


class PmnistTask(Task):
    """An RNN reads the 784 pixels one per step (in a fixed random order unless
    ``permute=false``) and classifies the digit; ``cell=bn_lstm`` adds recurrent BN."""

    metric = "error"

    def __init__(self, config, tfds_dir=None, data_dir=None):
        super().__init__(config)
        self.tfds_dir, self.data_dir = tfds_dir, data_dir
        self.permute_seed = config.seed if config.permute else None

    def build_model(self, jit_compile: bool | str = "auto"):
        c = self.config
        spec = recurrent_spec(c, max_timesteps=pmnist.NUM_PIXELS, jit_compile=jit_compile)
        return SequenceClassifier(10, spec, num_layers=c.num_layers, seed=c.seed)

    def sample_batch(self):
        return tf.zeros([1, pmnist.NUM_PIXELS, 1])

    def tokens_per_batch(self) -> int:
        return self.config.batch_size * pmnist.NUM_PIXELS

    def _batches(self, split, shuffle_seed=None, drop_remainder=False):
        return pmnist.pmnist_dataset(
            split,
            self.config.batch_size,
            self.permute_seed,
            shuffle_seed,
            self.tfds_dir,
            drop_remainder,
            data_dir=self.data_dir,
        )

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        c = self.config
        ds = self._batches("train", shuffle_seed=c.seed * 100_003 + epoch, drop_remainder=True)
        if c.train_fraction < 1:
            ds = ds.take(max(1, math.ceil(TRAIN_IMAGES * c.train_fraction / c.batch_size)))
        return ds

    def loss(self, model, batch, carry, training: bool):
        x, y = batch
        logits = model(x, training=training)
        nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=tf.cast(logits, tf.float32))
        return tf.reduce_sum(nll), tf.cast(tf.size(y), tf.float32), []

    def evaluate(self, model, split: str) -> dict:
        @tf.function(autograph=False)
        def step(x, y):
            logits = tf.cast(model(x, training=False), tf.float32)
            nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits)
            wrong = tf.not_equal(tf.argmax(logits, -1), y)
            return tf.reduce_sum(nll), tf.reduce_sum(tf.cast(wrong, tf.float32))

        total = errors = count = 0.0
        limit = self.config.eval_batches or None
        for i, (x, y) in enumerate(self._batches(split)):
            if limit and i >= limit:
                break
            nll, wrong = step(x, y)
            total, errors, count = total + float(nll), errors + float(wrong), count + int(tf.size(y))
        return {"loss": total / count, "error": errors / count, "examples": int(count)}

    def export(self, model, directory, metadata: dict) -> None:
        serving_model = self.serving_copy(model)
        order = None if self.permute_seed is None else pmnist.permutation(self.permute_seed)
        export_lib.export_classifier(serving_model, order, directory, metadata)
