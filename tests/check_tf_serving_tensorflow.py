"""Exports load and answer in the TensorFlow of the TF Serving release that docker-compose.yml pins.

TF Serving releases lag TensorFlow's, so the model server runs an older TensorFlow than the one
that wrote the exports. This check installs that TensorFlow (``tensorflow-cpu==X``, X the
``tensorflow/serving:X`` tag of docker-compose.yml) into a fresh virtual environment, and runs
``tests/serving_probe.py`` there on smoke exports of every kind: TF_LoadSessionFromSavedModel
from that wheel's ``libtensorflow_cc`` is the C++ loader TF Serving X links. Every output must
equal the one of this environment's TensorFlow.

    python tests/check_tf_serving_tensorflow.py [--keep]   # `make check-tf-serving-tensorflow`; CI runs it

Not a pytest test: installing a second TensorFlow takes a minute or more. Needs the shared data
(``ZONEOUT_DATA_DIR``) for the PTB and MNIST models; without it only the seq2seq model is checked.
Exit status 0 when every output agrees.
"""

from __future__ import annotations

import argparse
import os
import pickle
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
TESTS = REPO / "tests"
sys.path.insert(0, str(TESTS))

from conftest import SERVED  # noqa: E402  (the service tests' model of every kind)
from fresh_env import create, finish, run  # noqa: E402

NEEDS_DATA = ("char_ptb", "word_ptb", "pmnist")


def serving_tensorflow_version() -> str:
    """X of the ``tensorflow/serving:X`` image that docker-compose.yml runs."""
    match = re.search(
        r"image:\s*tensorflow/serving:(\d+\.\d+\.\d+)", (REPO / "docker-compose.yml").read_text()
    )
    if not match:
        raise SystemExit("docker-compose.yml pins no tensorflow/serving:X.Y.Z image")
    return match.group(1)


def run_quietly(argv, **kwargs):
    """``run``, with the command's output shown only if it fails."""
    try:
        return run(argv, capture_output=True, text=True, **kwargs)
    except subprocess.CalledProcessError as error:
        print(error.stdout[-3000:], error.stderr[-3000:], file=sys.stderr)
        raise


def build_model_base(workdir: Path) -> Path:
    """Smoke-trained exports of every kind the data allows, published as the service tests do."""
    model_base = workdir / "models"
    zoneout = [sys.executable, "-m", "tf_zoneout_train.cli"]
    env = {**os.environ, "TF_ZONEOUT_KERNEL": "graph", "TF_CPP_MIN_LOG_LEVEL": "2"}
    data = os.environ.get("ZONEOUT_DATA_DIR")
    for name, task in SERVED.items():
        if task in NEEDS_DATA and not (data and Path(data).is_dir()):
            print(f"skipped {task}: ZONEOUT_DATA_DIR is not set to the shared data", flush=True)
            continue
        run_dir = workdir / "runs" / task
        run_quietly([*zoneout, "train", task, "--preset", "smoke", "--run-dir", run_dir], env=env)
        run_quietly([*zoneout, "export", run_dir, "--model-base", model_base, "--name", name], env=env)
    return model_base


def probe(python, model_base: Path, out: Path, env_extra=None) -> dict:
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", **(env_extra or {})}
    run_quietly([python, TESTS / "serving_probe.py", model_base, out], env=env, cwd=out.parent)
    return pickle.loads(out.read_bytes())


def differences(reference: dict, other: dict) -> list[str]:
    from tf_zoneout.export import same_values

    found = []
    for name, seen in reference.items():
        if name not in other:
            found.append(f"{name}: not probed")
            continue
        if other[name]["warmup_replayed"] != seen["warmup_replayed"]:
            found.append(f"{name}: {other[name]['warmup_replayed']} warm-up requests replayed")
        for loader in ("cc", "session"):
            for signature, cases in seen[loader].items():
                for k, outputs in enumerate(cases):
                    for key, value in outputs.items():
                        if not same_values(value, other[name][loader][signature][k][key]):
                            found.append(
                                f"{name}.{signature} case {k} output {key} ({loader} loader) differs"
                            )
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--keep", action="store_true", help="keep the environment and exports; print their path"
    )
    args = parser.parse_args(argv)
    version = serving_tensorflow_version()
    workdir, python = create("tf-zoneout-serving-tf-")
    # tensorflow-serving-api would pull in the newest `tensorflow` beside tensorflow-cpu: its protos
    # are all the probe needs, so it is installed without dependencies.
    run([python, "-m", "pip", "install", "--quiet", f"tensorflow-cpu=={version}"])
    run([python, "-m", "pip", "install", "--quiet", "--no-deps", f"tensorflow-serving-api=={version}"])
    model_base = build_model_base(workdir)
    import tensorflow as tf

    here = probe(sys.executable, model_base, workdir / "here.pickle")
    # The checkout's tf_zoneout (tests/cc_loader.py's) on the older TensorFlow: PYTHONPATH, not an install.
    older = probe(python, model_base, workdir / "older.pickle", {"PYTHONPATH": str(REPO)})
    problems = differences(here, older)
    outputs = sum(len(o) for s in here.values() for c in s["cc"].values() for o in c)
    success = (
        f"TF Serving {version}'s TensorFlow loads every export ({', '.join(sorted(here))}) through its "
        f"C++ and session loaders, replays the warm-up requests, and answers as TensorFlow "
        f"{tf.__version__} does ({outputs} outputs per loader compared)"
    )
    return finish(workdir, args.keep, problems, success)


if __name__ == "__main__":
    raise SystemExit(main())
