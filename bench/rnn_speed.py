"""Training-step throughput of the zoneout layers against Keras's own LSTM and GRU.

One step = Embedding(V, V) -> RNN(H) -> Dense(V) -> softmax cross-entropy -> Adam,
truncated BPTT with the state carried between batches (gradient stopped), inside a
plain ``@tf.function`` (no jit_compile on the step: the layer arranges its own).
Variants are timed round-robin in one process, so machine drift hits all alike;
each figure is the median over all timed steps.

    python -m bench.rnn_speed [--shapes 1000x32,256x64] [--rounds 4] [--steps 3]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tf_zoneout as tz
from bench import torch_reference

VOCAB = 50
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
            logits = head(outputs)
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
        for name in names:
            if name in torch_kinds:
                step, states = torch_reference.make_step(torch_kinds[name], units, batch, VOCAB)
            else:
                step, states = make_step(factories[name](units), batch)
            t0 = time.perf_counter()
            for i in range(warmup):
                _, states = step(data[i, :, :-1], data[i, :, 1:], states)
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
            }
    return results


ZONEOUT_REFERENCE = "tz.ZoneoutLSTM zc=.5 zh=.05"


def add_ratios(results: dict) -> None:
    """Ratio of each variant's tokens/s to Keras's unregularized layer of its family, and
    of the baselines' rows to plain zoneout (their cost)."""
    for rows in results.values():
        for name, row in rows.items():
            family = "keras.GRU" if "GRU" in name else "keras.LSTM"
            if family in rows:
                row["ratio_to_keras"] = row["tokens_per_s"] / rows[family]["tokens_per_s"]
            if ("+" in name or "BatchNorm" in name) and ZONEOUT_REFERENCE in rows:
                row["ratio_to_zoneout"] = row["tokens_per_s"] / rows[ZONEOUT_REFERENCE]["tokens_per_s"]


def cpu_name() -> str:
    """CPU model and its widest vector extension, e.g. 'AMD EPYC (avx2)'."""
    name, flags = platform.machine(), ""
    try:
        with open("/proc/cpuinfo") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name") and name == platform.machine():
                    name = line.split(":", 1)[1].strip()
                elif line.startswith("flags"):
                    flags = line
    except OSError:
        return name
    vector = (
        "avx512f" if "avx512f" in flags else "avx2" if "avx2" in flags else "avx" if "avx" in flags else ""
    )
    return f"{name} ({vector})" if vector else name


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
        "cpu": cpu_name(),
        "cores": os.cpu_count(),
        "gpus": len(tf.config.list_physical_devices("GPU")),
        "seq_len": SEQ_LEN,
        "vocab": VOCAB,
    }


def table(results: dict) -> str:
    lines = [
        "| shape | variant | tokens/s | ratio to Keras | ratio to plain zoneout |",
        "|---|---|---|---|---|",
    ]

    def ratio_text(value):
        return f"{value:.2f}x" if value is not None else "-"

    for key, rows in results.items():
        for name, row in rows.items():
            lines.append(
                f"| {key} | {name} | {row['tokens_per_s']:,.0f} | {ratio_text(row.get('ratio_to_keras'))} "
                f"| {ratio_text(row.get('ratio_to_zoneout'))} |"
            )
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--shapes", default="1000x32,256x64", help="comma-separated HxB list")
    parser.add_argument("--rounds", type=int, default=4, help="round-robin rounds")
    parser.add_argument("--steps", type=int, default=3, help="timed steps per variant per round")
    parser.add_argument("--warmup", type=int, default=2, help="untimed steps per variant (tracing, XLA)")
    parser.add_argument("--only", default=None, help="comma-separated variant names to run")
    parser.add_argument("--out", type=Path, default=None, help="write results JSON here")
    args = parser.parse_args(argv)
    shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    env = environment()
    print("configuration:", json.dumps({**env, "shapes": shapes, "rounds": args.rounds, "steps": args.steps}))
    names = args.only.split(",") if args.only else None
    results = run(shapes, args.rounds, args.steps, args.warmup, names)
    add_ratios(results)
    print(table(results))
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        command = " ".join(["python -m bench.rnn_speed", *(argv if argv is not None else sys.argv[1:])])
        payload = {"environment": env, "command": command, "results": results}
        args.out.write_text(json.dumps(payload, indent=2) + "\n")
        print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
