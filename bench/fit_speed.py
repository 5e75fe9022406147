"""Training throughput inside ``model.fit`` (Keras's own loop, its default jit_compile="auto").

The same model as bench.rnn_speed (Embedding 50 -> RNN -> Dense 50), without state
carry (fit does not carry state), timed per batch by a callback; the variants
alternate epoch by epoch so machine drift hits them alike.

    python -m bench.fit_speed [--shapes 1000x32,256x64] [--epochs 4] [--batches 6]
"""

from __future__ import annotations

import argparse
import statistics
import time

import keras
import numpy as np

import tf_zoneout as tz
from bench.rnn_speed import SEQ_LEN, VOCAB, ZONEOUT_LSTM
from bench.shapes import add_shapes_argument


class BatchTimer(keras.callbacks.Callback):
    """Collects the wall time of every training batch."""

    def __init__(self):
        super().__init__()
        self.times = []

    def on_train_batch_begin(self, batch, logs=None):
        self._start = time.perf_counter()

    def on_train_batch_end(self, batch, logs=None):
        self.times.append(time.perf_counter() - self._start)


def build(layer):
    model = keras.Sequential(
        [
            keras.Input((SEQ_LEN,), dtype="int32"),
            keras.layers.Embedding(VOCAB, VOCAB),
            layer,
            keras.layers.Dense(VOCAB),
        ]
    )
    model.compile(keras.optimizers.Adam(1e-3), keras.losses.SparseCategoricalCrossentropy(from_logits=True))
    return model


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shapes_argument(parser)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=6, help="batches per epoch")
    args = parser.parse_args(argv)
    rng = np.random.default_rng(0)
    print("| shape | variant | tokens/s | ratio to Keras |\n|---|---|---|---|")
    for units, batch in args.shapes:
        data = rng.integers(0, VOCAB, size=(args.batches * batch, SEQ_LEN + 1)).astype("int32")
        x, y = data[:, :-1], data[:, 1:]
        models = {
            "keras.LSTM (fit)": build(keras.layers.LSTM(units, return_sequences=True)),
            "tz.ZoneoutLSTM zc=.5 zh=.05 (fit)": build(
                tz.ZoneoutLSTM(units, return_sequences=True, seed=1, **ZONEOUT_LSTM)
            ),
        }
        timers = {name: BatchTimer() for name in models}
        for model in models.values():  # warm-up: tracing and compilation
            model.fit(x[: 2 * batch], y[: 2 * batch], batch_size=batch, epochs=1, verbose=0)
        for _ in range(args.epochs):
            for name, model in models.items():
                model.fit(x, y, batch_size=batch, epochs=1, verbose=0, callbacks=[timers[name]])
        rates = {name: batch * SEQ_LEN / statistics.median(t.times) for name, t in timers.items()}
        reference = rates["keras.LSTM (fit)"]
        for name, rate in rates.items():
            print(f"| H={units} B={batch} | {name} | {rate:,.0f} | {rate / reference:.2f}x |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
