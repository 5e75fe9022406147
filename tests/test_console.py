"""train.console: TensorFlow's start-up noise is filtered, real errors still reach the terminal."""

from __future__ import annotations

import re
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_start_up_noise_is_dropped_and_real_errors_kept(tmp_path):
    # A stand-in "tensorflow" that writes to file descriptor 2 as the C++ runtime does.
    (tmp_path / "tensorflow.py").write_text(
        textwrap.dedent(
            """
            import os
            import types

            for line in (
                "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR",
                "I0000 00:00:1795874455.106022    2372 port.cc:153] oneDNN custom operations are on.",
                "W0000 00:00:1.2 2372 cpu_feature_guard.cc:1] To enable the following instructions: AVX2",
                "E0000 00:00:1795874455.3 2372 real.cc:1] something is really wrong",
            ):
                os.write(2, (line + "\\n").encode())

            def list_physical_devices():  # device discovery probes CUDA, after the import
                os.write(2, b"E0000 00:00:1.1 2372 cuda_executor.cc:1] failed call to cuInit: ERROR\\n")
                return []

            config = types.SimpleNamespace(list_physical_devices=list_physical_devices)
            """
        )
    )
    script = (
        "from tf_zoneout_train.console import import_tensorflow_quietly\n"
        "import_tensorflow_quietly()\nprint('ours')\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": f"{tmp_path}:{ROOT}", "PATH": "/usr/bin:/bin"},
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == "ours\n"
    assert done.stderr.splitlines() == ["E0000 00:00:1795874455.3 2372 real.cc:1] something is really wrong"]


def test_a_command_whose_extra_is_missing_says_which_to_install(monkeypatch, capsys):
    import importlib.util

    from tf_zoneout_train import cli

    real_find_spec = importlib.util.find_spec

    def without_tfds(name, *args):
        return None if name == "tensorflow_datasets" else real_find_spec(name, *args)

    monkeypatch.setattr(importlib.util, "find_spec", without_tfds)
    assert cli.main(["train", "char_ptb", "--preset", "smoke"]) == 2
    assert "pip install 'tf-zoneout[experiments]'" in capsys.readouterr().err
    assert cli.missing_extra("export") is None  # the core install is enough


def test_a_training_run_prints_no_start_up_or_device_probe_noise(tmp_path):
    # TensorFlow's C++ start-up lines (absl, oneDNN, CPU features) come at the import; device
    # discovery (the first strategy or op) probes CUDA after it: without the filter, "failed call
    # to cuInit" appeared between the configuration and the first epoch. stderr keeps only the
    # progress bars.
    argv = [
        sys.executable,
        "-m",
        "tf_zoneout_train.cli",
        "train",
        "semantic_consistency",
        "--preset",
        "smoke",
    ]
    argv += ["--compare", "0", "--epochs", "1", "--steps-per-epoch", "2", "--run-dir", str(tmp_path / "run")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    noise = [
        line
        for line in done.stderr.splitlines()
        if re.match(r"[IWE]\d{4} |WARNING: All log messages", line) or "cuInit" in line
    ]
    assert noise == [], done.stderr[-2000:]
    assert done.stdout.startswith("configuration"), done.stdout[:500]


# -- a GPU TensorFlow cannot use ------------------------------------------------------------------


def test_a_gpu_that_tensorflow_cannot_use_gets_one_clear_line(tmp_path, monkeypatch, capsys):
    from tf_zoneout_train import gpu_readiness as readiness

    driver = "NVRM version: NVIDIA UNIX x86_64 Kernel Module  550.54.15"
    assert readiness.gpu_problem(None, 0, None) is None  # no GPU: nothing to say
    assert readiness.gpu_problem(driver, 2, "/usr/local/cuda/bin/ptxas") is None  # all usable
    missing_cuda = readiness.gpu_problem(driver, 0, None)
    assert "finds none" in missing_cuda and "tf-zoneout[gpu]" in missing_cuda and "550.54.15" in missing_cuda
    assert "ptxas" in readiness.gpu_problem(driver, 1, None)

    version = tmp_path / "version"
    version.write_text(driver + "\nGCC version: 12\n")
    assert readiness.nvidia_driver(version) == driver
    monkeypatch.setattr(readiness.shutil, "which", lambda name: None)
    assert readiness.nvidia_driver(tmp_path / "absent") is None

    ptxas = tmp_path / "site" / "nvidia" / "cuda_nvcc" / "bin" / "ptxas"  # where the wheel puts it
    ptxas.parent.mkdir(parents=True)
    ptxas.write_text("")
    assert readiness.find_ptxas() is None
    monkeypatch.setattr(readiness.sys, "path", [str(tmp_path / "site")])
    assert readiness.find_ptxas() == str(ptxas)

    monkeypatch.setattr(readiness, "nvidia_driver", lambda: driver)
    assert readiness.warn_if_unusable(lambda: []) == missing_cuda
    assert capsys.readouterr().err.strip() == missing_cuda
