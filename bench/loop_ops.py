"""What one operation costs per step inside a recurrent loop: XLA-compiled against graph mode.

A ``tf.while_loop`` of ``--steps`` iterations carries one [B, 4H] tensor and applies one kind
of work per iteration; the time per iteration, median over ``--repeats`` calls, is that
work's per-step cost in a fused recurrence (loop overhead included, the "copy" row):

- ``copy``: x + 1 (the loop's own overhead and one elementwise pass)
- ``sigmoid``, ``tanh``: one transcendental over [B, 4H]
- ``lstm_elementwise``: an LSTM step's gate math (split, 3 sigmoids, 2 tanh, products)
- ``recurrent_matmul``: [B, H] x [H, 4H], the recurrence's one matmul

It separates the step's matmul from the rest, per implementation, on the machine it runs on
(docs/BENCHMARKS.md, "Reading the numbers").

    python -m bench.loop_ops [--shapes 256x64,1000x32] [--steps 100] [--repeats 15]
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

import tensorflow as tf

from bench.shapes import add_shapes_argument
from tf_zoneout import kernel_choice

KINDS = ("copy", "sigmoid", "tanh", "lstm_elementwise", "recurrent_matmul")


def _step(kind: str, units: int, recurrent):
    """One iteration's work on x [B, 4H] -> [B, 4H]."""

    def step(x):
        if kind == "copy":
            return x + 1.0
        if kind == "sigmoid":
            return tf.sigmoid(x * 0.9 + 0.1)
        if kind == "tanh":
            return tf.tanh(x * 0.9 + 0.1)
        if kind == "lstm_elementwise":
            i, f, g, o = tf.split(x, 4, axis=1)
            c = tf.sigmoid(f) * i + tf.sigmoid(i) * tf.tanh(g)
            h = tf.sigmoid(o) * tf.tanh(c)
            return tf.concat([h, c, h, c], axis=1)
        if kind == "recurrent_matmul":
            return tf.matmul(x[:, :units], recurrent)
        raise ValueError(f"unknown kind {kind!r}; choose from {', '.join(KINDS)}")

    return step


def per_step_us(kind: str, units: int, batch: int, xla: bool, steps: int, repeats: int) -> float:
    """Median microseconds per loop iteration of ``kind`` at [B, 4H]."""
    x0 = tf.random.normal([batch, 4 * units])
    step = _step(kind, units, tf.random.normal([units, 4 * units]) * 0.05)

    @tf.function(jit_compile=xla)
    def loop(x):
        return tf.while_loop(lambda t, x: t < steps, lambda t, x: (t + 1, step(x)), (0, x))[1]

    loop(x0).numpy()  # trace and compile
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        loop(x0).numpy()
        times.append(time.perf_counter() - start)
    return statistics.median(times) / steps * 1e6


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shapes_argument(parser, "256x64,1000x32")
    parser.add_argument("--steps", type=int, default=100, help="loop iterations per call")
    parser.add_argument("--repeats", type=int, default=15, help="timed calls per row (median)")
    args = parser.parse_args(argv)
    shapes = args.shapes
    cpu = kernel_choice.cpu_description()
    config = {
        "cpu": f"{cpu['model']} ({cpu['isa']})",
        "threads": kernel_choice.threads(),
        "tensorflow": tf.__version__,
    }
    print(
        "configuration:",
        json.dumps({**config, "shapes": shapes, "steps": args.steps, "repeats": args.repeats}),
    )
    print("| shape | work per step | XLA (us/step) | graph (us/step) |")
    print("|---|---|---|---|")
    for units, batch in shapes:
        for kind in KINDS:
            xla = per_step_us(kind, units, batch, True, args.steps, args.repeats)
            graph = per_step_us(kind, units, batch, False, args.steps, args.repeats)
            print(f"| H={units} B={batch} | {kind} | {xla:.1f} | {graph:.1f} |", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
