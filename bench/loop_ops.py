"""What one operation costs per step inside a recurrent loop: XLA-compiled against graph mode.

A ``tf.while_loop`` of ``--steps`` iterations carries one [B, 4H] tensor and applies one kind
of work per iteration; the time per iteration, median over ``--repeats`` calls, is that
work's per-step cost in a fused recurrence (loop overhead included, the "copy" row):

- ``copy``: x + 1 (the loop's own overhead and one elementwise pass)
- ``sigmoid``, ``tanh``: one transcendental over [B, 4H]
- ``lstm_elementwise``: an LSTM step's gate math (split, 3 sigmoids, 2 tanh, products)
- ``recurrent_matmul``: [B, H] x [H, 4H], the recurrence's one matmul

It separates the step's matmul from the rest, per implementation, on the machine it runs on
(docs/BENCHMARKS.md, "Reading the numbers"). With PyTorch importable, a third column runs the
same work in eager PyTorch (a Python loop: its per-op dispatch is included), and two more rows
per shape time a whole LSTM recurrence, forward and backward, per time step:
``tz.ZoneoutLSTM`` (z_c = 0.5, z_h = 0.05, XLA loop) against ``torch.nn.LSTM`` (which on CPU
runs oneDNN's fused LSTM primitive, ``aten::mkldnn_rnn_layer``, in both directions).

    python -m bench.loop_ops [--shapes 256x64,1000x32] [--steps 100] [--repeats 15]
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import statistics
import time

import tensorflow as tf

from bench import torch_reference
from bench.shapes import add_shapes_argument
from tf_zoneout import kernel_choice

KINDS = ("copy", "sigmoid", "tanh", "lstm_elementwise", "recurrent_matmul")


@dataclasses.dataclass(frozen=True)
class _Ops:
    """The few array operations a step needs, from one library (TensorFlow or PyTorch)."""

    sigmoid: object
    tanh: object
    split4: object  # x [B, 4H] -> four [B, H]
    concat: object  # list of [B, H] -> [B, n H]


TF_OPS = _Ops(tf.sigmoid, tf.tanh, lambda x: tf.split(x, 4, axis=1), lambda xs: tf.concat(xs, axis=1))


def _torch_ops():
    import torch

    return _Ops(torch.sigmoid, torch.tanh, lambda x: x.chunk(4, 1), lambda xs: torch.cat(xs, 1))


def _step(kind: str, units: int, recurrent, ops: _Ops = TF_OPS):
    """One iteration's work on x [B, 4H] -> [B, 4H] (for ``recurrent_matmul``, [B, 4H] -> [B, 4H]
    through x[:, :H] @ recurrent [H, 4H])."""

    def step(x):
        if kind == "copy":
            return x + 1.0
        if kind == "sigmoid":
            return ops.sigmoid(x * 0.9 + 0.1)
        if kind == "tanh":
            return ops.tanh(x * 0.9 + 0.1)
        if kind == "lstm_elementwise":
            i, f, g, o = ops.split4(x)
            c = ops.sigmoid(f) * i + ops.sigmoid(i) * ops.tanh(g)
            h = ops.sigmoid(o) * ops.tanh(c)
            return ops.concat([h, c, h, c])
        if kind == "recurrent_matmul":
            return x[:, :units] @ recurrent
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
    return _median_us(lambda: loop(x0).numpy(), steps, repeats)


def torch_per_step_us(kind: str, units: int, batch: int, steps: int, repeats: int) -> float:
    """``per_step_us``'s work in eager PyTorch (float32, no autograd), microseconds per step."""
    import torch

    x0 = torch.randn(batch, 4 * units)
    step = _step(kind, units, torch.randn(units, 4 * units) * 0.05, _torch_ops())

    def loop():
        x = x0
        for _ in range(steps):
            x = step(x)
        return x

    with torch.no_grad():
        return _median_us(loop, steps, repeats)


def recurrence_us(units: int, batch: int, steps: int, repeats: int) -> dict:
    """A whole LSTM recurrence over ``steps`` time steps, forward + backward, per time step:
    ``{"tz_zoneout_lstm": us, "torch_lstm": us or None}`` (input projection included in both)."""
    import tf_zoneout as tz

    layer = tz.ZoneoutLSTM(
        units, zoneout_cells=0.5, zoneout_states=0.05, return_sequences=True, jit_compile=True
    )
    x = tf.random.normal([batch, steps, units])
    layer.build(x.shape)

    @tf.function
    def train(x):
        with tf.GradientTape() as tape:
            y = layer(x, training=True)
            loss = tf.reduce_sum(y * y)
        grads = tape.gradient(loss, layer.trainable_variables)
        return tf.add_n([tf.reduce_sum(g) for g in grads])

    train(x).numpy()
    result = {"tz_zoneout_lstm": _median_us(lambda: train(x).numpy(), steps, repeats), "torch_lstm": None}
    if torch_reference.available():
        import torch

        lstm = torch.nn.LSTM(units, units)
        xt = torch.randn(steps, batch, units)

        def torch_train():
            y, _ = lstm(xt)
            (y * y).sum().backward()

        torch_train()
        result["torch_lstm"] = _median_us(torch_train, steps, repeats)
    return result


def _median_us(call, steps: int, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        call()
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
    with_torch = torch_reference.available()
    if with_torch:
        import torch

        config["torch"] = torch.__version__
        config["torch_threads"] = torch.get_num_threads()
    print("| shape | work per step | XLA (us/step) | graph (us/step) | PyTorch eager (us/step) |")
    print("|---|---|---|---|---|")
    for units, batch in shapes:
        for kind in KINDS:
            xla = per_step_us(kind, units, batch, True, args.steps, args.repeats)
            graph = per_step_us(kind, units, batch, False, args.steps, args.repeats)
            eager = torch_per_step_us(kind, units, batch, args.steps, args.repeats) if with_torch else None
            print(f"| H={units} B={batch} | {kind} | {xla:.1f} | {graph:.1f} | {_us(eager)} |", flush=True)
        whole = recurrence_us(units, batch, args.steps, args.repeats)
        print(
            f"| H={units} B={batch} | whole recurrence, forward + backward: tz.ZoneoutLSTM (XLA) "
            f"| {whole['tz_zoneout_lstm']:.1f} | | torch.nn.LSTM (oneDNN): {_us(whole['torch_lstm'])} |",
            flush=True,
        )
    return 0


def _us(value) -> str:
    return "n/a" if value is None else f"{value:.1f}"


if __name__ == "__main__":
    raise SystemExit(main())
