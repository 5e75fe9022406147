"""A matmul roofline for a recurrent training step: the best TensorFlow GEMM rate at the
step's own shapes, turned into a tokens/s bound.

The bench step (``bench.rnn_speed``) is Embedding(V, I=V) -> RNN(H, G gates) -> Dense(V),
T steps of B sequences. Its matmuls, forward and backward, with the input projection
hoisted out of the loop and the recurrent weight gradient done once after it:

    input projection  [TB, I] x [I, G]      x1, backward: dW [I, TB] x [TB, G], dX [TB, G] x [G, I]
    recurrence        [B, H] x [H, G]       xT, backward: dz U^T [B, G] x [G, H] xT, dU [H, TB] x [TB, G]
    output layer      [TB, H] x [H, V]      x1, backward: dH [TB, V] x [V, H], dW [H, TB] x [TB, V]

Each distinct shape is timed with ``tf.matmul`` in a graph-mode loop (oneDNN) and in an
XLA-compiled one, and the faster rate is kept. The bound is T*B tokens over the sum of
those matmul times: no implementation that does these matmuls can beat it, so a row's
percentage of it says how much of the step is not matmul (overhead, elementwise work).

    python -m bench.roofline [--shapes 1000x32,256x64]
"""

from __future__ import annotations

import argparse
import statistics
import time
from dataclasses import dataclass

import tensorflow as tf

from bench.shapes import add_shapes_argument

LOOP = 20  # independent matmuls per timed call, so per-call overhead hardly counts
REPEATS = 7


@dataclass(frozen=True)
class MatMul:
    m: int
    k: int
    n: int
    count: int  # times per training step

    @property
    def flops(self) -> int:
        return 2 * self.m * self.k * self.n


def step_matmuls(units: int, batch: int, steps: int, vocab: int, inputs: int, gates: int) -> list[MatMul]:
    """The matmuls of one training step of the bench model (shapes as in the module docstring)."""
    tokens = steps * batch
    return [
        MatMul(tokens, inputs, gates, 1),  # input projection
        MatMul(inputs, tokens, gates, 1),  # its weight gradient
        MatMul(tokens, gates, inputs, 1),  # its input gradient
        MatMul(batch, units, gates, steps),  # recurrence
        MatMul(batch, gates, units, steps),  # backward through it: dz U^T
        MatMul(units, tokens, gates, 1),  # recurrent weight gradient
        MatMul(tokens, units, vocab, 1),  # output layer
        MatMul(tokens, vocab, units, 1),  # its input gradient
        MatMul(units, tokens, vocab, 1),  # its weight gradient
    ]


def _timed_loop(m: int, k: int, n: int, jit_compile: bool):
    """A callable running LOOP independent [m, k] x [k, n] matmuls (distinct left operands, so
    nothing can be shared between them) in one graph, and waiting for them."""
    lefts = [tf.random.uniform([m, k]) for _ in range(LOOP)]
    b = tf.random.uniform([k, n])

    @tf.function(jit_compile=jit_compile, autograph=False)
    def loop(lefts, b):
        return tf.add_n([tf.matmul(a, b)[0, 0] for a in lefts])

    return lambda: float(loop(lefts, b))


def matmul_seconds(m: int, k: int, n: int) -> float:
    """Best (graph vs XLA) median seconds of one [m, k] x [k, n] float32 matmul."""
    best = float("inf")
    for jit_compile in (False, True):
        run = _timed_loop(m, k, n, jit_compile)
        run()  # trace, compile
        times = []
        for _ in range(REPEATS):
            start = time.perf_counter()
            run()
            times.append((time.perf_counter() - start) / LOOP)
        best = min(best, statistics.median(times))
    return best


def bound(units: int, batch: int, steps: int, vocab: int, inputs: int, gates: int, cache=None) -> dict:
    """Tokens/s bound of the step and the GEMM rates behind it.

    ``cache`` (a dict) shares shape timings between calls (the LSTM and GRU of one shape
    share several).
    """
    cache = {} if cache is None else cache
    total = 0.0
    rates = {}
    for mm in step_matmuls(units, batch, steps, vocab, inputs, gates):
        shape = (mm.m, mm.k, mm.n)
        if shape not in cache:
            cache[shape] = matmul_seconds(*shape)
        total += cache[shape] * mm.count
        rates[f"{mm.m}x{mm.k}x{mm.n}"] = round(mm.flops / cache[shape] / 1e9, 1)
    return {"tokens_per_s": steps * batch / total, "matmul_s_per_step": total, "gflops": rates}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shapes_argument(parser)
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--vocab", type=int, default=50)
    args = parser.parse_args(argv)
    cache = {}
    for units, batch in args.shapes:
        for family, gates in (("LSTM", 4 * units), ("GRU", 3 * units)):
            result = bound(units, batch, args.steps, args.vocab, args.vocab, gates, cache)
            print(
                f"H={units} B={batch} {family}: bound {result['tokens_per_s']:,.0f} tok/s; "
                f"GFLOP/s by shape {result['gflops']}"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
