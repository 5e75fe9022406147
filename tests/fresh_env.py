"""Fresh virtual environments for the install checks (``check_core_install.py``,
``check_tf_serving_tensorflow.py``): create one, run commands in it, report and clean up."""

from __future__ import annotations

import shutil
import subprocess
import sys
import tempfile
import venv
from pathlib import Path


def run(argv, **kwargs):
    """Run a command (printed first, as the shell's ``set -x`` would), failing on a non-zero status."""
    print("+", " ".join(str(a) for a in argv), flush=True)
    return subprocess.run(argv, check=True, **kwargs)


def create(prefix: str) -> tuple[Path, Path]:
    """(a new temporary folder, the Python of a fresh venv with a current pip inside it)."""
    workdir = Path(tempfile.mkdtemp(prefix=prefix))
    venv.EnvBuilder(with_pip=True).create(workdir / "venv")
    python = workdir / "venv" / "bin" / "python"
    run([python, "-m", "pip", "install", "--quiet", "--upgrade", "pip"])
    return workdir, python


def finish(workdir: Path, keep: bool, failures: list[str], success: str) -> int:
    """Keep (and name) or remove ``workdir``; print each failure, or ``success``; the exit status."""
    if keep:
        print(f"kept at {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    for failure in failures:
        print(f"FAIL: {failure}", file=sys.stderr)
    if not failures:
        print(success)
    return 1 if failures else 0
