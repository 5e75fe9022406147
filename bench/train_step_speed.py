"""The training loop's step with and without whole-step XLA (``--jit-compile``).

Builds the char_ptb model of a preset through ``train.loop.Trainer`` and times its
``train_step`` on one fixed batch, alternating the two variants round by round (these
machines drift 10-15%); prints and saves medians and the ratio.

    python -m bench.train_step_speed [--preset cpu] [--rounds 5] [--steps 10] [--out FILE.json]
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import tempfile
import time

import tensorflow as tf

from bench.report import command_line
from tf_zoneout_train import config as config_lib
from tf_zoneout_train import tasks
from tf_zoneout_train.loop import Trainer


def make_step(preset: str, jit_compile: bool, units: int | None):
    overrides = {"jit_compile_step": jit_compile, **({"units": units} if units else {})}
    config = config_lib.resolve("char_ptb", preset, overrides)
    trainer = Trainer(tasks.get(config), tempfile.mkdtemp(prefix="bench-step-"), show_progress=False)
    trainer._build()
    batch = next(iter(trainer.task.train_batches(0)))
    trainer.train_step(batch, [])  # trace and compile
    return config, lambda: trainer.train_step(batch, [])[0].numpy()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="cpu")
    parser.add_argument("--units", type=int, default=None)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--out", default="docs/bench/train_step_speed.json")
    args = parser.parse_args(argv)
    variants = {}
    for jit in (False, True):
        config, step = make_step(args.preset, jit, args.units)
        variants[f"jit_compile={jit}"] = {"step": step, "times": []}
    tokens = config.batch_size * config.seq_len
    for _ in range(args.rounds):
        for variant in variants.values():
            start = time.perf_counter()
            for _ in range(args.steps):
                variant["step"]()
            variant["times"].append((time.perf_counter() - start) / args.steps)
    result = {
        "command": command_line("bench.train_step_speed", argv),
        "machine": platform.processor() or platform.machine(),
        "tensorflow": tf.__version__,
        "config": {
            "task": "char_ptb",
            "preset": args.preset,
            "units": config.units,
            "batch_size": config.batch_size,
            "seq_len": config.seq_len,
        },
        "median_tokens_per_second": {
            name: tokens / statistics.median(v["times"]) for name, v in variants.items()
        },
    }
    speeds = result["median_tokens_per_second"]
    result["ratio_jit_to_no_jit"] = speeds["jit_compile=True"] / speeds["jit_compile=False"]
    print(json.dumps(result, indent=1))
    with open(args.out, "w") as handle:
        json.dump(result, handle, indent=1)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
