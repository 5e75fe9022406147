"""The core install: `pip install tf-zoneout` (no extras) in a fresh virtual environment.

Checks that it needs only tensorflow, keras and numpy; that it trains a ``ZoneoutLSTM``
for a step; that the experiments' dependencies (tensorflow-datasets, matplotlib, tqdm,
tensorboard) and the service's (fastapi, uvicorn) are NOT installed; and that the wheel
installs no generic top-level module (``train``, ``serve``, ``bench``, ``tests``).

    python tests/check_core_install.py [--keep]      # `make check-core-install`; CI runs it

Not a pytest test: installing TensorFlow into a new environment takes a minute or more
(from pip's cache when `make install` has just downloaded it), which the five-minute
test suite cannot afford. Exit status 0 when every check holds.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from fresh_env import create, finish, run

REPO = Path(__file__).resolve().parent.parent
MUST_BE_ABSENT = ("tensorflow_datasets", "matplotlib", "tqdm", "tensorboard", "fastapi", "uvicorn")
GENERIC_NAMES = ("train", "serve", "bench", "tests")

# Runs inside the fresh environment, from a neutral working directory (so the checkout's
# own folders are not importable by accident).
PROBE = f"""
import importlib.util, json, sys
import numpy as np
import keras
import tf_zoneout as tz

present = [m for m in {MUST_BE_ABSENT!r} if importlib.util.find_spec(m) is not None]
generic = [m for m in {GENERIC_NAMES!r} if importlib.util.find_spec(m) is not None]
model = keras.Sequential([
    keras.Input((12, 5)),
    tz.ZoneoutLSTM(16, zoneout_cells=0.5, zoneout_states=0.05, seed=1),
    keras.layers.Dense(1),
])
model.compile("adam", "mse")
x = np.random.default_rng(0).normal(size=(8, 12, 5)).astype("float32")
before = model.get_weights()[1].copy()
loss = model.train_on_batch(x, np.ones((8, 1), "float32"))
changed = not np.allclose(before, model.get_weights()[1])
print(json.dumps({{"present": present, "generic": generic, "loss": float(loss), "weights_changed": changed}}))
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--keep", action="store_true", help="keep the environment and print its path")
    args = parser.parse_args(argv)
    workdir, python = create("tf-zoneout-core-")
    run([python, "-m", "pip", "install", "--quiet", str(REPO)])  # a regular (non-editable) install
    freeze = run([python, "-m", "pip", "freeze"], capture_output=True, text=True).stdout
    result = run([python, "-c", PROBE], capture_output=True, text=True, cwd=workdir)
    report = json.loads(result.stdout.strip().splitlines()[-1])
    print(report)
    failures = []
    if report["present"]:
        failures.append(f"the core install pulled in extras' packages: {report['present']}")
    if report["generic"]:
        failures.append(f"generic top-level modules are importable: {report['generic']}")
    if not report["weights_changed"]:
        failures.append("a training step did not change the ZoneoutLSTM's weights")
    for name in ("tensorflow-datasets", "matplotlib"):
        if any(line.lower().startswith(f"{name}==") for line in freeze.splitlines()):
            failures.append(f"{name} is installed (pip freeze)")
    return finish(
        workdir,
        args.keep,
        failures,
        "core install OK: tensorflow, keras and numpy only; a ZoneoutLSTM trained a step; "
        "no generic top-level modules",
    )


if __name__ == "__main__":
    raise SystemExit(main())
