"""Training-step throughput of the zoneout layers against Keras's own LSTM and GRU.

One step = Embedding(V, V) -> RNN(H) -> Dense(V) -> softmax cross-entropy -> Adam,
truncated BPTT with the state carried between batches (gradient stopped), inside a
plain ``@tf.function`` (no jit_compile on the step: the layer arranges its own).
Variants are timed round-robin in one process, so machine drift hits all alike;
each figure is the median over all timed steps.

Each row also shows the kernel implementation our layer ran ("xla" or "graph"; the
default jit_compile="auto" measures and chooses, and two rows force each one) and the
row's share of a matmul roofline (``bench.roofline``: the best TensorFlow GEMM rate at
the step's own shapes as a tokens/s bound).

    python -m bench.rnn_speed [--shapes 1000x32,256x64] [--rounds 4] [--steps 3] [--out auto]

``--out auto`` writes ``docs/bench/rnn_speed-<cpu kind>.json``: one file per CPU kind, so
a run on one processor never replaces another's figures (``bench.report`` renders them all).
``--precision mixed_bfloat16`` builds every Keras and zoneout layer under Keras's
mixed_bfloat16 policy and writes ``rnn_speed-<cpu kind>-mixed-bfloat16.json``, a table of
its own; the PyTorch rows stay float32 (the reference to beat) and there is no roofline column.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tf_zoneout as tz
from bench import roofline, torch_reference
from bench.shapes import add_shapes_argument
from tf_zoneout import kernel_choice

VOCAB = 50
PRECISIONS = ("float32", "mixed_bfloat16")
SEQ_LEN = 100
ZONEOUT_LSTM = {"zoneout_cells": 0.5, "zoneout_states": 0.05}
ZONEOUT_GRU = {"zoneout": 0.1}
KERAS_RECURRENT_DROPOUT = 0.25


def variants() -> dict[str, callable]:
    """Name -> factory(units) of the layers compared; the first of each family is the reference."""
    common = {"return_sequences": True, "return_state": True}
    return {
        "keras.LSTM": lambda h: keras.layers.LSTM(h, **common),
        "tz.ZoneoutLSTM z=0": lambda h: tz.ZoneoutLSTM(h, seed=1, **common),
        "tz.ZoneoutLSTM zc=.5 zh=.05": lambda h: tz.ZoneoutLSTM(h, seed=1, **ZONEOUT_LSTM, **common),
        "tz.ZoneoutLSTM zc=.5 zh=.05 [forced xla]": lambda h: tz.ZoneoutLSTM(
            h, seed=1, jit_compile=True, **ZONEOUT_LSTM, **common
        ),
        "tz.ZoneoutLSTM zc=.5 zh=.05 [forced graph]": lambda h: tz.ZoneoutLSTM(
            h, seed=1, jit_compile=False, **ZONEOUT_LSTM, **common
        ),
        f"keras.LSTM recurrent_dropout={KERAS_RECURRENT_DROPOUT}": lambda h: keras.layers.LSTM(
            h, recurrent_dropout=KERAS_RECURRENT_DROPOUT, seed=1, **common
        ),
        "tz.ZoneoutLSTM zc=.5 zh=.05 + input_gate_dropout=.25": lambda h: tz.ZoneoutLSTM(
            h, seed=1, input_gate_dropout=0.25, **ZONEOUT_LSTM, **common
        ),
        "tz.ZoneoutLSTM zc=.5 zh=.05 + weight_noise=.075": lambda h: tz.ZoneoutLSTM(
            h, seed=1, weight_noise=0.075, **ZONEOUT_LSTM, **common
        ),
        "tz.RecurrentBatchNormLSTM zc=zh=.15 shared": lambda h: tz.RecurrentBatchNormLSTM(
            h, zoneout_cells=0.15, zoneout_states=0.15, share_mask=True, seed=1, **common
        ),
        "keras.GRU": lambda h: keras.layers.GRU(h, **common),
        "tz.ZoneoutGRU z=0": lambda h: tz.ZoneoutGRU(h, seed=1, **common),
        "tz.ZoneoutGRU z=.1": lambda h: tz.ZoneoutGRU(h, seed=1, **ZONEOUT_GRU, **common),
        "tz.ZoneoutSimpleRNN z=0": lambda h: tz.ZoneoutSimpleRNN(h, seed=1, **common),
        "tz.ZoneoutSimpleRNN z=.1": lambda h: tz.ZoneoutSimpleRNN(h, seed=1, **ZONEOUT_GRU, **common),
        "keras.SimpleRNN": lambda h: keras.layers.SimpleRNN(h, **common),
        f"keras.GRU recurrent_dropout={KERAS_RECURRENT_DROPOUT}": lambda h: keras.layers.GRU(
            h, recurrent_dropout=KERAS_RECURRENT_DROPOUT, seed=1, **common
        ),
    }


def torch_variants() -> dict[str, str]:
    """Name -> kind of the PyTorch reference rows (empty when torch is not installed)."""
    if not torch_reference.available():
        return {}
    return {"torch.nn.LSTM (no zoneout possible)": "lstm", "torch.nn.GRU (no zoneout possible)": "gru"}


def make_step(layer, batch: int):
    """Build a compiled training step for ``layer``; returns (step_fn, initial_states)."""
    embed = keras.layers.Embedding(VOCAB, VOCAB)
    head = keras.layers.Dense(VOCAB)
    optimizer = keras.optimizers.Adam(1e-3)
    x0 = tf.zeros([batch, SEQ_LEN], tf.int32)
    _, *states = layer(embed(x0))
    head(tf.zeros([batch, 1, layer.units]))
    weights = embed.trainable_variables + layer.trainable_variables + head.trainable_variables
    optimizer.build(weights)

    @tf.function
    def step(x, y, states):
        with tf.GradientTape() as tape:
            outputs, *new_states = layer(embed(x), initial_state=states, training=True)
            logits = tf.cast(head(outputs), tf.float32)  # mixed precision: the loss in float32
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(y, logits))
        grads = tape.gradient(loss, weights)
        optimizer.apply(grads, weights)
        return loss, [tf.stop_gradient(s) for s in new_states]

    return step, [tf.zeros_like(s) for s in states]


def run(shapes, rounds: int, steps: int, warmup: int, names=None) -> dict:
    rng = np.random.default_rng(0)
    factories = variants()
    torch_kinds = torch_variants()
    names = names or list(factories) + list(torch_kinds)
    results = {}
    for units, batch in shapes:
        data = rng.integers(0, VOCAB, size=(steps + warmup, batch, SEQ_LEN + 1)).astype("int32")
        prepared = {}
        implementations = {}
        for name in names:
            t0 = time.perf_counter()
            if name in torch_kinds:
                step, states = torch_reference.make_step(torch_kinds[name], units, batch, VOCAB)
            else:
                layer = factories[name](units)
                step, states = make_step(layer, batch)
            for i in range(warmup):
                _, states = step(data[i, :, :-1], data[i, :, 1:], states)
            if name not in torch_kinds:
                implementations[name] = getattr(layer, "kernel_implementation", None)
            prepared[name] = [step, states, []]
            print(f"  H={units} B={batch} {name}: warm-up {time.perf_counter() - t0:.1f}s", flush=True)
        for _ in range(rounds):
            for name in names:
                step, states, times = prepared[name]
                for i in range(steps):
                    x, y = data[i, :, :-1], data[i, :, 1:]
                    t0 = time.perf_counter()
                    loss, states = step(x, y, states)
                    float(loss)  # wait for the step to finish
                    times.append(time.perf_counter() - t0)
                prepared[name][1] = states
        key = f"H={units} B={batch}"
        results[key] = {}
        for name in names:
            median = statistics.median(prepared[name][2])
            results[key][name] = {
                "median_step_s": median,
                "tokens_per_s": batch * SEQ_LEN / median,
                "steps_timed": len(prepared[name][2]),
                "implementation": implementations.get(name),
            }
    return results


def gates_of(name: str, units: int) -> int:
    """Gate width G of a variant's recurrent kernel."""
    return units * (3 if "GRU" in name else 1 if "SimpleRNN" in name else 4)


def add_roofline(results: dict) -> dict:
    """Add each row's share of the matmul roofline; returns the bounds per (shape, G)."""
    cache, bounds = {}, {}
    for key, rows in results.items():
        units, batch = (int(part.split("=")[1]) for part in key.split())
        for name, row in rows.items():
            gates = gates_of(name, units)
            if (key, gates) not in bounds:
                bounds[(key, gates)] = roofline.bound(units, batch, SEQ_LEN, VOCAB, VOCAB, gates, cache)
            row["roofline_tokens_per_s"] = bounds[(key, gates)]["tokens_per_s"]
            row["percent_of_roofline"] = 100 * row["tokens_per_s"] / row["roofline_tokens_per_s"]
    return {f"{key} G={gates}": value for (key, gates), value in bounds.items()}


ZONEOUT_REFERENCE = "tz.ZoneoutLSTM zc=.5 zh=.05"
RESULTS_DIR = Path("docs/bench")


def json_path(cpu: str, precision: str = "float32") -> Path:
    """docs/bench/rnn_speed-<cpu kind slug>[-<precision>].json (float32 has no suffix)."""
    slug = "".join(c if c.isalnum() else "-" for c in cpu.lower().replace("(r)", ""))
    suffix = "" if precision == "float32" else f"-{precision.replace('_', '-')}"
    return RESULTS_DIR / f"rnn_speed-{'-'.join(part for part in slug.split('-') if part)}{suffix}.json"


def add_ratios(results: dict) -> None:
    """Ratio of each variant's tokens/s to Keras's unregularized layer of its family, and
    of the baselines' rows to plain zoneout (their cost)."""
    for rows in results.values():
        for name, row in rows.items():
            family = next((f"keras.{k}" for k in ("GRU", "SimpleRNN") if k in name), "keras.LSTM")
            if family in rows:
                row["ratio_to_keras"] = row["tokens_per_s"] / rows[family]["tokens_per_s"]
            if ("+" in name or "BatchNorm" in name) and ZONEOUT_REFERENCE in rows:
                row["ratio_to_zoneout"] = row["tokens_per_s"] / rows[ZONEOUT_REFERENCE]["tokens_per_s"]


def cpu_kind() -> str:
    """CPU model and ISA, e.g. 'AMD EPYC (avx2)': what one BENCHMARKS.md table is for."""
    cpu = kernel_choice.cpu_description()
    return f"{cpu['model']} ({cpu['isa']})"


def environment() -> dict:
    torch_version = None
    if torch_reference.available():
        import torch

        torch_version = torch.__version__
    return {
        "tensorflow": tf.__version__,
        "torch": torch_version,
        "keras": keras.__version__,
        "python": platform.python_version(),
        "cpu": cpu_kind(),
        "isa": kernel_choice.cpu_description()["isa"],
        "cores": os.cpu_count(),
        "threads": tf.config.threading.get_intra_op_parallelism_threads() or kernel_choice.threads(),
        "kernel_env": os.environ.get(kernel_choice.ENV_VAR, "auto"),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "seq_len": SEQ_LEN,
        "vocab": VOCAB,
        "precision": keras.mixed_precision.global_policy().name,
    }


def table(results: dict) -> str:
    lines = [
        "| shape | variant | kernel | tokens/s | ratio to Keras | ratio to plain zoneout | % of roofline |",
        "|---|---|---|---|---|---|---|",
    ]

    def ratio_text(value):
        return f"{value:.2f}x" if value is not None else "-"

    for key, rows in results.items():
        for name, row in rows.items():
            percent = row.get("percent_of_roofline")
            lines.append(
                f"| {key} | {name} | {row.get('implementation') or '-'} | {row['tokens_per_s']:,.0f} "
                f"| {ratio_text(row.get('ratio_to_keras'))} | {ratio_text(row.get('ratio_to_zoneout'))} "
                f"| {'-' if percent is None else f'{percent:.0f}%'} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    add_shapes_argument(parser)
    parser.add_argument("--rounds", type=int, default=4, help="round-robin rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant (tracing, XLA)")
    parser.add_argument("--only", default=None, help="comma-separated variant names to run")
    parser.add_argument(
        "--out", default=None, help="write results JSON here ('auto': docs/bench/rnn_speed-<cpu kind>.json)"
    )
    parser.add_argument("--no-roofline", action="store_true", help="skip the matmul roofline column")
    parser.add_argument(
        "--precision",
        choices=PRECISIONS,
        default="float32",
        help="Keras dtype policy of every Keras/zoneout layer (PyTorch rows stay float32); "
        "mixed_bfloat16 has no roofline column and writes its own JSON file",
    )
    parser.add_argument(
        "--roofline-only",
        type=Path,
        default=None,
        metavar="JSON",
        help="re-measure only the roofline of an existing results file and update it in place",
    )
    args = parser.parse_args(argv)
    if args.roofline_only:
        payload = json.loads(args.roofline_only.read_text())
        payload["roofline"] = add_roofline(payload["results"])
        payload["roofline_measured"] = time.strftime("%Y-%m-%d")
        args.roofline_only.write_text(json.dumps(payload, indent=2) + "\n")
        print(table(payload["results"]))
        print(f"updated the roofline in {args.roofline_only}")
        return 0
    shapes = args.shapes
    mixed = args.precision != "float32"
    keras.mixed_precision.set_global_policy(args.precision)
    env = environment()
    print("configuration:", json.dumps({**env, "shapes": shapes, "rounds": args.rounds, "steps": args.steps}))
    names = args.only.split(",") if args.only else None
    results = run(shapes, args.rounds, args.steps, args.warmup, names)
    add_ratios(results)
    bounds = {} if args.no_roofline or mixed else add_roofline(results)
    print(table(results))
    if args.out:
        out = json_path(env["cpu"], args.precision) if args.out == "auto" else Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        from bench.report import command_line  # bench.report imports this module

        command = command_line("bench.rnn_speed", argv)
        payload = {
            "environment": env,
            "command": command,
            "date": time.strftime("%Y-%m-%d"),
            "results": results,
            "roofline": bounds,
        }
        out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
