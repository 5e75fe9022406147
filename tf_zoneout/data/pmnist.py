"""Sequential and permuted-sequential MNIST pipelines: 784 pixel steps of 1 feature."""

from __future__ import annotations

import numpy as np
import tensorflow as tf

from tf_zoneout.data.builders_common import prepared_builder

NUM_PIXELS = 784


def permutation(seed: int) -> np.ndarray:
    """One fixed permutation of the 784 pixel positions (a bijection, unlike the original code's draw).

    Args:
        seed: the permutation's seed (a run's ``seed``).
    """
    return np.random.default_rng(seed).permutation(NUM_PIXELS).astype(np.int32)


def pmnist_dataset(
    split: str,
    batch_size: int,
    permute_seed: int | None = 0,
    shuffle_seed: int | None = None,
    tfds_dir=None,
    drop_remainder: bool = False,
    data_dir=None,
) -> tf.data.Dataset:
    """Batches (x [B, 784, 1] float32 in [0, 1], y [B] int64) of (permuted) sequential MNIST.

    Args:
        split: "train" (50,000), "validation" (the last 10,000 training images) or "test".
        batch_size: examples per batch.
        permute_seed: seed of the pixel permutation; None gives unpermuted sequential MNIST.
        shuffle_seed: shuffle the examples in an order fixed by this seed (None: keep the order).
        tfds_dir: the prepared TFDS data folder (default ``~/tensorflow_datasets``).
        drop_remainder: drop a last batch smaller than ``batch_size``.
        data_dir: the raw MNIST files, laid out like shared/data (default ``$ZONEOUT_DATA_DIR``,
            else download).

    Raises:
        DataError: ``data_dir`` is not a folder, or a raw file is missing or corrupt.
    """
    builder = prepared_builder("zoneout_mnist", tfds_dir, data_dir)
    ds = builder.as_dataset(split=split, shuffle_files=False, as_supervised=True)
    order = None if permute_seed is None else tf.constant(permutation(permute_seed))

    def to_sequence(image, label):
        pixels = tf.cast(tf.reshape(image, [NUM_PIXELS]), tf.float32) / 255.0
        if order is not None:
            pixels = tf.gather(pixels, order)
        return pixels[:, None], label

    if shuffle_seed is not None:
        # One fixed order per seed: callers pass a new seed per epoch (resumable runs).
        ds = ds.shuffle(10_000, seed=shuffle_seed, reshuffle_each_iteration=False)
    ds = ds.map(to_sequence, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
    return ds.batch(batch_size, drop_remainder=drop_remainder).prefetch(tf.data.AUTOTUNE)
