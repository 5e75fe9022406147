"""``make gpu-check``: the GPU-relevant tests and the GPU benchmark, on a machine with an NVIDIA GPU.

    python tests/gpu_check.py [--wheels DIR] [--python PY] [--keep] [--skip-bench]

1. A fresh venv with this checkout and its ``gpu`` and ``experiments`` extras (TensorFlow with the
   CUDA libraries), plus pytest: from PyPI, or only from ``--wheels DIR`` on a machine without
   internet. ``--python PY`` uses an existing environment instead.
2. Stops with exit status 2 and one line if TensorFlow there sees no GPU.
3. The GPU-relevant tests with TensorFloat-32 off (``ZONEOUT_TF32=0``): the comparisons with
   Keras's layers (cuDNN's zeros at padded steps accounted for), kernel equality, the kernel choice,
   mask statistics and their independence from XLA, mixed_float16.
4. ``python -m bench.gpu_speed --out docs/bench``: ``docs/bench/gpu-<device>.json`` and the table for
   docs/BENCHMARKS.md.

At most 10 minutes on one GPU (the Makefile runs it under ``timeout 600``).
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import fresh_env

ROOT = Path(__file__).resolve().parents[1]
GPU_TESTS = [
    "tests/test_matches_keras.py",
    "tests/test_kernels.py",
    "tests/test_kernel_choice.py",
    "tests/test_masks.py",
    "tests/test_zoneout_op.py",
    "tests/test_layer_zoneout.py",
    "tests/test_mixed_float16.py",
]
SEES_A_GPU = (
    "import sys, tensorflow as tf; gpus = tf.config.list_physical_devices('GPU'); print(gpus); "
    "sys.exit(0 if gpus else 1)"
)


def install(python: Path, wheels: str | None) -> None:
    source = ["--no-index", "--find-links", wheels] if wheels else []
    package = f"{ROOT}[gpu,experiments]"
    fresh_env.run([python, "-m", "pip", "install", "--quiet", *source, "-e", package, "pytest"])


def check(python: Path, skip_bench: bool) -> list[str] | None:
    """Run steps 2-4 with ``python``: the failures, or None when TensorFlow sees no GPU."""
    seen = subprocess.run([python, "-c", SEES_A_GPU], capture_output=True, text=True)
    if seen.returncode != 0:
        print(
            "gpu-check: error: TensorFlow sees no GPU here (it needs an NVIDIA driver and the CUDA "
            f"libraries of tensorflow[and-cuda]); nothing was run. {seen.stderr.strip()[-300:]}",
            file=sys.stderr,
        )
        return None
    failures = []
    environ = {**os.environ, "ZONEOUT_TF32": "0", "TF_CPP_MIN_LOG_LEVEL": "2"}
    pytest = [python, "-m", "pytest", "-q", "-p", "no:cacheprovider", *GPU_TESTS]
    tests = subprocess.run(pytest, cwd=ROOT, env=environ)
    if tests.returncode != 0:
        failures.append(f"the GPU tests failed (pytest exit status {tests.returncode})")
    if not skip_bench:
        bench = subprocess.run([python, "-m", "bench.gpu_speed", "--out", "docs/bench"], cwd=ROOT)
        if bench.returncode != 0:
            failures.append(f"bench.gpu_speed failed (exit status {bench.returncode})")
    return failures


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--wheels", help="install only from this folder of wheels (no index)")
    parser.add_argument("--python", type=Path, help="an environment's Python to use instead of a fresh venv")
    parser.add_argument("--keep", action="store_true", help="keep the fresh venv")
    parser.add_argument("--skip-bench", action="store_true", help="the tests only")
    args = parser.parse_args(argv)
    if args.python:
        failures = check(args.python, args.skip_bench)
        for failure in failures or []:
            print(f"FAIL: {failure}", file=sys.stderr)
        return 2 if failures is None else int(bool(failures))
    workdir, python = fresh_env.create("zoneout-gpu-check-")
    install(python, args.wheels)
    failures = check(python, args.skip_bench)
    status = fresh_env.finish(workdir, args.keep, failures or [], "gpu-check: the tests passed on the GPU")
    return 2 if failures is None else status


if __name__ == "__main__":
    raise SystemExit(main())
