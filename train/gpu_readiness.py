"""A clear line at start when this machine has a GPU that TensorFlow cannot use (instead of
TensorFlow's own warning, which the console filter hides with the rest of its start-up noise).

Two cases: an NVIDIA driver is loaded but TensorFlow finds no GPU (its CUDA libraries are missing:
a plain ``pip install tensorflow`` has none), so everything silently runs on the CPU; or TensorFlow
sees GPUs but there is no ``ptxas`` (CUDA's assembler), which XLA needs to compile the layers' loops,
so they fall back to graph mode.
"""

from __future__ import annotations

import shutil
import sys
from pathlib import Path

DRIVER_FILE = Path("/proc/driver/nvidia/version")
GPU_EXTRA = "pip install 'tf-zoneout[gpu]' (TensorFlow with its CUDA libraries, tensorflow[and-cuda])"


def nvidia_driver(driver_file: Path = DRIVER_FILE) -> str | None:
    """The loaded NVIDIA kernel driver's description (its version file's first line), or None."""
    try:
        return driver_file.read_text().splitlines()[0].strip() or "an NVIDIA driver"
    except (OSError, IndexError):
        return "an NVIDIA driver" if shutil.which("nvidia-smi") else None


def find_ptxas() -> str | None:
    """``ptxas`` on PATH, or the one the nvidia-cuda-nvcc wheel (a dependency of tensorflow[and-cuda])
    installs beside the Python packages."""
    found = shutil.which("ptxas")
    if found:
        return found
    for folder in map(Path, sys.path):
        candidate = folder / "nvidia" / "cuda_nvcc" / "bin" / "ptxas"
        if candidate.is_file():
            return str(candidate)
    return None


def gpu_problem(driver: str | None, visible_gpus: int, ptxas: str | None) -> str | None:
    """The one line to print, or None when there is no GPU or TensorFlow can use it fully.

    Args:
        driver: ``nvidia_driver()``; visible_gpus: how many GPUs TensorFlow lists; ptxas: ``find_ptxas()``.
    """
    if visible_gpus == 0 and driver:
        return (
            f"zoneout: this machine has a GPU ({driver}) but TensorFlow finds none, so everything runs "
            f"on the CPU: its CUDA libraries are missing. {GPU_EXTRA}."
        )
    if visible_gpus and not ptxas:
        return (
            f"zoneout: TensorFlow sees {visible_gpus} GPU(s) but no ptxas (CUDA's assembler), which XLA "
            "needs to compile the layers' loops; they fall back to graph mode. "
            f"{GPU_EXTRA} brings it, or put CUDA's bin/ folder on PATH."
        )
    return None


def warn_if_unusable(list_gpus) -> str | None:
    """Print ``gpu_problem`` for this machine to standard error; ``list_gpus()`` -> TensorFlow's GPUs
    (``tf.config.list_physical_devices("GPU")``). Returns what it printed."""
    problem = gpu_problem(nvidia_driver(), len(list_gpus()), find_ptxas())
    if problem:
        print(problem, file=sys.stderr, flush=True)
    return problem
