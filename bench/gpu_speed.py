"""Training-step speed on a GPU: ``tz.ZoneoutLSTM`` (zoneout on and off, each implementation) against
``keras.layers.LSTM`` (cuDNN), Keras's ``recurrent_dropout`` path and, if installed, ``torch.nn.LSTM``.

    python -m bench.gpu_speed [--out docs/bench] [--shapes 256x64,1000x32,1000x256] [--steps 100]
                              [--precisions float32-tf32,float32,mixed_float16] [--smoke]

One step is forward, backward and an SGD update of one LSTM layer on [B, T, H] inputs (T = 100, input
width H). Each variant is timed over ``--rounds`` round-robin rounds of ``--iterations`` steps after a
warm-up (tracing, XLA); the median step gives tokens/s = B * T / step. Precisions: ``float32-tf32``
(TensorFloat-32 matmuls, TensorFlow's default on Ampere and later), ``float32`` (TF32 off) and
``mixed_float16`` (Keras's policy; PyTorch under autocast). Writes ``gpu-<device>.json`` and prints the
table for docs/BENCHMARKS.md with each variant's ratio to cuDNN. ``--smoke`` runs tiny shapes, on a
CPU too, to check the tool (its numbers mean nothing).

Goals it measures against (issue 23): zoneout off equal to cuDNN; zoneout on at least half of cuDNN's
tokens/s and at least 3x Keras's ``recurrent_dropout`` path.
"""

from __future__ import annotations

import argparse
import json
import platform
import re
import statistics
import sys
import time
from pathlib import Path

import keras
import tensorflow as tf

import tf_zoneout as tz
from bench.report import command_line
from bench.shapes import parse_shapes
from tf_zoneout import kernel_choice

PRECISIONS = ("float32-tf32", "float32", "mixed_float16")
DEFAULT_SHAPES = "256x64,1000x32,1000x256"
REFERENCE = "keras.LSTM (cuDNN)"


def keras_variants(units: int) -> dict:
    """name -> a function making the layer (under the precision's policy, which the caller sets)."""
    zoneout = dict(zoneout_cells=0.5, zoneout_states=0.05, seed=1)
    return {
        REFERENCE: lambda: keras.layers.LSTM(units, return_sequences=True),
        "keras.LSTM recurrent_dropout=0.25": lambda: keras.layers.LSTM(
            units, return_sequences=True, recurrent_dropout=0.25
        ),
        "tz zoneout off (auto)": lambda: tz.ZoneoutLSTM(units, return_sequences=True),
        "tz zoneout off (xla)": lambda: tz.ZoneoutLSTM(units, return_sequences=True, jit_compile=True),
        "tz zoneout on (auto)": lambda: tz.ZoneoutLSTM(units, return_sequences=True, **zoneout),
        "tz zoneout on (xla)": lambda: tz.ZoneoutLSTM(
            units, return_sequences=True, jit_compile=True, **zoneout
        ),
        "tz zoneout on (graph)": lambda: tz.ZoneoutLSTM(
            units, return_sequences=True, jit_compile=False, **zoneout
        ),
    }


def keras_step(make_layer, units: int, batch: int, steps: int):
    """A compiled training step of one layer (sum-of-squares loss, SGD) and its inputs; returns a
    zero-argument callable that runs one step and waits for it, and the layer."""
    layer = make_layer()
    x = tf.random.uniform([batch, steps, units], -1.0, 1.0)
    layer(x[:, :2])
    optimizer = keras.optimizers.SGD(1e-3)
    variables = layer.trainable_variables

    @tf.function
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_mean(tf.square(tf.cast(layer(x, training=True), tf.float32)))
        optimizer.apply(tape.gradient(loss, variables), variables)
        return loss

    return (lambda: float(step(x))), layer


def torch_step(units: int, batch: int, steps: int, precision: str):
    """The same step in PyTorch (nn.LSTM, cuDNN on a GPU), or None without torch."""
    try:
        import torch
    except ImportError:
        return None
    device = "cuda" if torch.cuda.is_available() else "cpu"
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = precision == "float32-tf32"
    lstm = torch.nn.LSTM(units, units, batch_first=True).to(device)
    optimizer = torch.optim.SGD(lstm.parameters(), lr=1e-3)
    x = torch.rand(batch, steps, units, device=device) * 2 - 1

    def step():
        with torch.autocast(device, dtype=torch.float16, enabled=precision == "mixed_float16"):
            out, _ = lstm(x)
            loss = out.float().square().mean()
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        return float(loss)

    return step


def timed(runners: dict, rounds: int, iterations: int, warmup: int) -> dict:
    """Median seconds per step of each runner (round-robin rounds; one that fails is reported)."""
    times, failures = {name: [] for name in runners}, {}
    for name, run in runners.items():
        try:
            for _ in range(warmup):
                run()
        except Exception as error:  # e.g. a path this device or precision does not support
            failures[name] = f"{type(error).__name__}: {str(error).splitlines()[0][:200]}"
    usable = {n: r for n, r in runners.items() if n not in failures}
    for _ in range(rounds):
        for name, run in usable.items():
            start = time.perf_counter()
            for _ in range(iterations):
                run()
            times[name].append((time.perf_counter() - start) / iterations)
    return {name: statistics.median(values) for name, values in times.items() if values}, failures


def run_precision(precision: str, shapes, steps: int, rounds: int, iterations: int, warmup: int) -> dict:
    tf.config.experimental.enable_tensor_float_32_execution(precision == "float32-tf32")
    keras.mixed_precision.set_global_policy("mixed_float16" if precision == "mixed_float16" else "float32")
    results = {}
    try:
        for units, batch in shapes:
            runners, layers = {}, {}
            for name, make in keras_variants(units).items():
                try:
                    runners[name], layers[name] = keras_step(make, units, batch, steps)
                except Exception as error:
                    print(f"  {name}: cannot be built here ({error})", file=sys.stderr)
            torch_runner = torch_step(units, batch, steps, precision)
            if torch_runner is not None:
                runners["torch.nn.LSTM"] = torch_runner
            seconds, failures = timed(runners, rounds, iterations, warmup)
            rows = {}
            for name in runners:
                row = (
                    {"failed": failures[name]}
                    if name in failures
                    else {"tokens_per_s": batch * steps / seconds[name]}
                )
                implementation = getattr(layers.get(name), "kernel_implementation", None)
                if implementation:
                    row["implementation"] = implementation
                rows[name] = row
            reference = rows.get(REFERENCE, {}).get("tokens_per_s")
            for row in rows.values():
                if reference and "tokens_per_s" in row:
                    row["ratio_to_cudnn"] = row["tokens_per_s"] / reference
            results[f"H={units} B={batch}"] = rows
            print(f"{precision} H={units} B={batch}: " + ", ".join(
                f"{n} {r.get('tokens_per_s', 0):,.0f}" for n, r in rows.items()
            ), flush=True)  # fmt: skip
    finally:
        keras.mixed_precision.set_global_policy("float32")
        tf.config.experimental.enable_tensor_float_32_execution(True)
    return results


def device_name() -> str:
    described = kernel_choice.device_description()
    return described["model"] if described["kind"] == "gpu" else f"{described['model']} (cpu)"


def slug(name: str) -> str:
    return re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")


def table(payload: dict) -> str:
    """The markdown table of one run: tokens/s and the ratio to cuDNN, per precision and shape."""
    lines = [
        f"Device: {payload['environment']['device']}; TensorFlow {payload['environment']['tensorflow']}; "
        f"command: `{payload['command']}`.",
        "",
        "| precision | shape | variant | implementation | tokens/s | vs cuDNN |",
        "|---|---|---|---|---|---|",
    ]
    for precision, shapes in payload["results"].items():
        for shape, rows in shapes.items():
            for name, row in rows.items():
                speed = f"{row['tokens_per_s']:,.0f}" if "tokens_per_s" in row else f"failed: {row['failed']}"
                ratio = f"{row['ratio_to_cudnn']:.2f}x" if "ratio_to_cudnn" in row else ""
                implementation = row.get("implementation", "")
                lines.append(f"| {precision} | {shape} | {name} | {implementation} | {speed} | {ratio} |")
    return "\n".join(lines)


def build_parser() -> argparse.ArgumentParser:
    """The command line of ``python -m bench.gpu_speed``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--out", type=Path, default=Path("docs/bench"), help="folder of the JSON")
    parser.add_argument("--shapes", default=DEFAULT_SHAPES, help="HxB,... (units x batch)")
    parser.add_argument("--steps", type=int, default=100, help="time steps T")
    parser.add_argument("--precisions", default=",".join(PRECISIONS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=5, help="steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--smoke", action="store_true", help="tiny shapes (checks the tool; on a CPU too)")
    return parser


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if args.smoke:
        args.shapes, args.steps, args.rounds, args.iterations, args.warmup = "8x4", 5, 1, 1, 1
    precisions = [p.strip() for p in args.precisions.split(",") if p.strip()]
    unknown = sorted(set(precisions) - set(PRECISIONS))
    if unknown:
        raise SystemExit(f"unknown precisions {unknown}; choose from {', '.join(PRECISIONS)}")
    shapes = parse_shapes(args.shapes)
    device = device_name()
    payload = {
        "environment": {
            "device": device,
            "gpus": len(tf.config.list_physical_devices("GPU")),
            "tensorflow": tf.__version__,
            "keras": keras.__version__,
            "python": platform.python_version(),
            "seq_len": args.steps,
            "build": {k: v for k, v in tf.sysconfig.get_build_info().items() if "version" in k},
        },
        "command": command_line("bench.gpu_speed", argv),
        "results": {
            p: run_precision(p, shapes, args.steps, args.rounds, args.iterations, args.warmup)
            for p in precisions
        },
    }
    args.out.mkdir(parents=True, exist_ok=True)
    path = args.out / f"gpu-{slug(device)}.json"
    path.write_text(json.dumps(payload, indent=1) + "\n")
    print(table(payload))
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
