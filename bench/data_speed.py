"""Input pipelines against the training step that consumes them (same process, same shapes).

For each pipeline: batches/s it delivers, and batches/s a training step of a
ZoneoutLSTM consumes at the same batch shape; the ratio should be >= 10.

    python -m bench.data_speed [--tfds-dir DIR]   (needs ZONEOUT_DATA_DIR)
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np
import tensorflow as tf

import tf_zoneout as tz
import tf_zoneout.data
from bench.rnn_speed import SEQ_LEN, VOCAB, make_step
from tf_zoneout.data import lm, pmnist


def pipeline_rate(ds: tf.data.Dataset, batches: int) -> float:
    """Batches per second over ``batches`` batches after the first (which fills buffers)."""
    it = iter(ds.repeat())
    next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    return batches / (time.perf_counter() - start)


def lm_step_rate(units: int, batch: int, steps: int = 5) -> float:
    """Training steps per second of bench.rnn_speed's model (vocabulary 50 = PTB char's, T=100)."""
    step, states = make_step(
        tz.ZoneoutLSTM(
            units, zoneout_cells=0.5, zoneout_states=0.05, seed=1, return_sequences=True, return_state=True
        ),
        batch,
    )
    x = np.random.default_rng(0).integers(0, VOCAB, size=(batch, SEQ_LEN + 1)).astype("int32")
    times = []
    for i in range(steps + 2):
        t0 = time.perf_counter()
        loss, states = step(x[:, :-1], x[:, 1:], states)
        float(loss)
        if i >= 2:
            times.append(time.perf_counter() - t0)
    return 1 / statistics.median(times)


def pmnist_step_rate(batch: int, steps: int = 3) -> float:
    """Training steps per second of a 100-unit ZoneoutLSTM classifier on [batch, 784, 1]."""
    import keras

    layer = tz.ZoneoutLSTM(100, zoneout_cells=0.15, zoneout_states=0.15, seed=1)
    head = keras.layers.Dense(10)
    optimizer = keras.optimizers.RMSprop(1e-3)
    x = tf.random.uniform([batch, 784, 1])
    y = tf.zeros([batch], tf.int64)
    head(layer(x[:1]))
    weights = layer.trainable_variables + head.trainable_variables

    @tf.function
    def step():
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(
                tf.nn.sparse_softmax_cross_entropy_with_logits(y, head(layer(x, training=True)))
            )
        optimizer.apply(tape.gradient(loss, weights), weights)
        return loss

    times = []
    for i in range(steps + 1):
        t0 = time.perf_counter()
        float(step())
        if i:
            times.append(time.perf_counter() - t0)
    return 1 / statistics.median(times)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--tfds-dir", default=None)
    args = parser.parse_args(argv)
    vocabulary = lm.load_vocabulary("ptb_char", args.tfds_dir)
    ids = lm.token_ids("ptb_char", "train", vocabulary, args.tfds_dir)
    rows = []
    assert len(vocabulary) == VOCAB
    lm_rate = lm_step_rate(1000, 32)
    for name, ds in (
        ("ptb_char contiguous B=32 T=100", lm.contiguous_batches(ids, 32, 100)),
        ("ptb_char chunks (original) B=32 T=100", lm.chunk_batches(ids, 32, 100, seed=0)),
    ):
        rows.append((name, pipeline_rate(ds, 200), lm_rate, "ZoneoutLSTM H=1000 step"))
    mnist_ds = pmnist.pmnist_dataset("train", 100, permute_seed=0, shuffle_seed=0, tfds_dir=args.tfds_dir)
    rows.append(
        ("pMNIST B=100", pipeline_rate(mnist_ds, 100), pmnist_step_rate(100), "ZoneoutLSTM H=100 step")
    )
    print("| pipeline | batches/s delivered | consumer | batches/s consumed | ratio |\n|---|---|---|---|---|")
    for name, delivered, consumed, consumer in rows:
        print(f"| {name} | {delivered:,.0f} | {consumer} | {consumed:,.2f} | {delivered / consumed:,.0f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
