"""Shared test helpers: matched (ours, Keras) layer pairs and a gradient helper."""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# Layers left at jit_compile="auto" would time both kernels once per configuration;
# the suite pins the XLA loop (test_kernel_choice.py tests the measurement itself), and the
# graph loop for the end-to-end modules below.
os.environ.setdefault("TF_ZONEOUT_KERNEL", "xla")

import keras
import numpy as np
import pytest
import tensorflow as tf
import xla_cache  # sets TF_XLA_FLAGS (read at the first XLA compile, not at import)

import tf_zoneout as tz

# `make gpu-check` runs the suite with ZONEOUT_TF32=0: TensorFloat-32 (on by default on Ampere and
# later GPUs) rounds matmul inputs to 10 bits, far outside the 2e-5 tolerances of the comparisons.
if os.environ.get("ZONEOUT_TF32") == "0":
    tf.config.experimental.enable_tensor_float_32_execution(False)


def pytest_unconfigure(config):
    xla_cache.remove_own_cache()


# (family name, our layer class, Keras layer class, number of states)
FAMILIES = [
    ("lstm", tz.ZoneoutLSTM, keras.layers.LSTM, 2),
    ("gru", tz.ZoneoutGRU, keras.layers.GRU, 1),
    ("simple_rnn", tz.ZoneoutSimpleRNN, keras.layers.SimpleRNN, 1),
]


# Modules that train whole models for a few steps (tasks, runs, commands, the service's smoke
# models): they test the loop, data, checkpoints and exports, not the kernels, and a few steps
# never repay XLA's compile time (a word_ptb smoke run: 12 s with the graph loop, 19-22 s with
# XLA). Both kernels give the same outputs and gradients (test_kernels.py, test_matches_keras.py
# and the layer tests run the XLA loop; the graph loop is compared with it); the multi-replica
# test in test_training_runtime.py keeps XLA inside a distribution strategy.
END_TO_END_MODULES = {
    "test_training",
    "test_training_runtime",
    "test_presets",
    "test_commands",
    "test_readme",
    "test_training_faults",
}
END_TO_END_KERNEL = "graph"


@contextlib.contextmanager
def end_to_end_kernel():
    """``$TF_ZONEOUT_KERNEL`` set to the end-to-end kernel for the duration (and for subprocesses)."""
    before = os.environ.get("TF_ZONEOUT_KERNEL")
    os.environ["TF_ZONEOUT_KERNEL"] = END_TO_END_KERNEL
    try:
        yield
    finally:
        if before is None:
            del os.environ["TF_ZONEOUT_KERNEL"]
        else:
            os.environ["TF_ZONEOUT_KERNEL"] = before


@pytest.fixture(autouse=True)
def _kernel_of_the_module(request):
    if (
        request.module.__name__.rsplit(".", 1)[-1] in END_TO_END_MODULES
        and "xla_kernel" not in request.keywords
    ):
        with end_to_end_kernel():
            yield
    else:
        yield


@pytest.fixture(params=FAMILIES, ids=[f[0] for f in FAMILIES])
def family(request):
    return request.param


def matched_pair(ours_cls, keras_cls, units, input_shape, **kwargs):
    """Build our layer and Keras's with identical weights (copied Keras -> ours)."""
    ours = ours_cls(units, **kwargs)
    ref = keras_cls(units, **kwargs)
    dummy = np.zeros(input_shape, "float32")
    ref(dummy)
    ours(dummy)
    rng = np.random.default_rng(7)
    # Random (not initial) weights so the comparison exercises every gate.
    ref.set_weights([rng.normal(scale=0.4, size=w.shape).astype("float32") for w in ref.get_weights()])
    ours.set_weights(ref.get_weights())
    return ours, ref


def loss_and_grads(layer, x, training, initial_state=None, mask=None, seed=3):
    """Call ``layer`` and return (outputs list, grads w.r.t. weights, inputs and initial states)."""
    x = tf.convert_to_tensor(x)
    sources = [x] + ([tf.convert_to_tensor(s) for s in initial_state] if initial_state else [])
    with tf.GradientTape() as tape:
        tape.watch(sources)
        kwargs = {"training": training}
        if initial_state:
            kwargs["initial_state"] = sources[1:]
        if mask is not None:
            kwargs["mask"] = mask
        out = layer(x, **kwargs)
        outs = out if isinstance(out, list | tuple) else [out]
        rng = np.random.default_rng(seed)
        loss = tf.add_n([tf.reduce_sum(o * rng.normal(size=o.shape).astype("float32")) for o in outs])
    grads = tape.gradient(loss, layer.trainable_variables + sources)
    return [np.asarray(o) for o in outs], [np.asarray(g) for g in grads]


def assert_close(a_list, b_list, atol=2e-5, rtol=2e-5):
    assert len(a_list) == len(b_list)
    for a, b in zip(a_list, b_list):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), atol=atol, rtol=rtol)


SHARED_DATA = os.environ.get("ZONEOUT_DATA_DIR")


def shared_data_dir():
    """The shared data folder, or skip the test with the reason visible in the summary."""
    if not SHARED_DATA or not Path(SHARED_DATA).is_dir():
        pytest.skip("ZONEOUT_DATA_DIR is not set to a data folder (e.g. ../shared/data): data tests skipped")
    return Path(SHARED_DATA)


def _shared_tmp(tmp_path_factory) -> Path:
    """A folder shared by every pytest-xdist worker of this run (this session's own without xdist)."""
    base = tmp_path_factory.getbasetemp()
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@contextlib.contextmanager
def _exclusive(lock_file: Path):
    """Hold an exclusive lock on ``lock_file`` (between the processes of an xdist run)."""
    with open(lock_file, "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@pytest.fixture(scope="session")
def tfds_dir(tmp_path_factory):
    """A TFDS folder shared by every test and xdist worker of the run. The shared data sets
    (PTB char and word, MNIST) are prepared here once, under a lock, so no two workers ever
    prepare one at the same time and none prepares it twice."""
    import tensorflow_datasets as tfds

    import tf_zoneout.data  # noqa: F401  (registers the builders)

    shared = _shared_tmp(tmp_path_factory)
    folder = shared / "tfds"
    if SHARED_DATA and Path(SHARED_DATA).is_dir():
        with _exclusive(shared / "tfds.lock"):
            for name in ("ptb_char", "ptb_word", "zoneout_mnist"):
                tfds.builder(name, data_dir=str(folder)).download_and_prepare()
    return str(folder)


@pytest.fixture
def small_text8(tmp_path, monkeypatch):
    """A 300,000-character file in text8's format, registered as the text8 source.

    Returns (TFDS folder to prepare it in, the text bytes).
    """
    import hashlib
    import string

    from tf_zoneout.data import sources

    rng = np.random.default_rng(0)
    alphabet = np.array(list(" " + string.ascii_lowercase))
    text = "".join(alphabet[rng.integers(0, 27, size=300_000)]).encode()
    (tmp_path / "text8").mkdir()
    (tmp_path / "text8" / "text8").write_bytes(text)
    small = sources.SourceFile(
        "text8/text8", None, len(text), sources.TEXT8_URL, "text8", hashlib.md5(text).hexdigest()
    )
    monkeypatch.setitem(sources.FILES, "text8/text8", small)
    monkeypatch.setenv(sources.DATA_DIR_ENV, str(tmp_path))
    return str(tmp_path / "tfds"), text


@pytest.fixture(scope="session")
def smoke_run(tmp_path_factory, tfds_dir):
    """Smoke-trained runs shared by every test module and every xdist worker: ``smoke_run(task)``
    -> (trainer, run folder, final metrics). Each task is trained once per test run, by whichever
    worker asks first (under a file lock); another worker rebuilds the trained model from the
    run's checkpoints (``with_trainer=False``: it does not, and the trainer is None).
    Tests only read what the run wrote."""
    from tf_zoneout_train import config as config_lib
    from tf_zoneout_train import tasks
    from tf_zoneout_train.loop import Trainer

    shared = _shared_tmp(tmp_path_factory)
    runs = {}

    def get(task_name: str, with_trainer: bool = True):
        if task_name not in runs or (with_trainer and runs[task_name][0] is None):
            if task_name in ("char_ptb", "word_ptb", "pmnist", "gradient_propagation"):
                shared_data_dir()
            run_dir = shared / f"smoke-{task_name}" / "run"
            finished = run_dir.parent / "finished.json"
            # One lock per task: two workers may train two different tasks at once (the data
            # sets were prepared up front, by the tfds_dir fixture).
            with _exclusive(shared / f"smoke-{task_name}.lock"):
                if finished.exists():
                    trainer = None
                    if with_trainer:
                        config = config_lib.load(run_dir)
                        task = tasks.get(config, tfds_dir)
                        trainer = Trainer(task, run_dir, resume=True, show_progress=False)
                        trainer.restore_final()
                    final = json.loads(finished.read_text())
                else:
                    config = config_lib.resolve(task_name, "smoke")
                    trainer = Trainer(tasks.get(config, tfds_dir), run_dir, show_progress=False)
                    try:
                        with end_to_end_kernel():
                            final = trainer.run()
                    except BaseException:
                        shutil.rmtree(run_dir, ignore_errors=True)  # the next asker trains afresh
                        raise
                    finished.write_text(json.dumps(final))
            runs[task_name] = (trainer, run_dir, final)
        return runs[task_name]

    return get


# The model base every service test serves: a smoke-trained model of every kind.
LM, SEQ2SEQ, WORD_LM, CLASSIFIER = "char_lm", "adder", "word_lm", "digits"
SERVED = {LM: "char_ptb", SEQ2SEQ: "seq2seq", WORD_LM: "word_ptb", CLASSIFIER: "pmnist"}


@pytest.fixture(scope="session")
def model_base(tmp_path_factory, smoke_run):
    """MODEL_BASE/NAME/1 for every model of ``SERVED`` (from the session's shared smoke runs)."""
    from tf_zoneout.saved_model.model_base import publish

    root = tmp_path_factory.mktemp("serving")
    for name, task_name in SERVED.items():
        _, run_dir, _ = smoke_run(task_name, with_trainer=False)
        publish(run_dir / "export", root / "models", name)
    return root / "models"


# -- training processes (kill/resume and fault tests) --------------------------------------------


def train_argv(run_dir, tfds_dir, resume=False, flags=(), kill_at_step=None) -> list[str]:
    """``zoneout train word_ptb --preset smoke`` in ``run_dir``, on the session's prepared data;
    ``kill_at_step``: SIGKILLed as the step after that one begins (tests/kill_at_step.py)."""
    import sys

    command = ["-m", "tf_zoneout_train.cli"]
    if kill_at_step is not None:
        command = [str(Path(__file__).parent / "kill_at_step.py"), str(kill_at_step)]
    argv = [sys.executable, *command, "train", "word_ptb", "--preset", "smoke"]
    # --tfds-dir: the session's prepared data, not a second copy in ~/tensorflow_datasets.
    argv += ["--run-dir", str(run_dir), "--tfds-dir", tfds_dir, *(["--resume"] if resume else []), *flags]
    return argv


def train_process(run_dir, tfds_dir, extra_env=None, resume=False, flags=(), kill_at_step=None):
    """Run ``train_argv`` to its end in a subprocess; returns the CompletedProcess."""
    import subprocess

    env = {**os.environ, **(extra_env or {})}
    argv = train_argv(run_dir, tfds_dir, resume, flags, kill_at_step)
    return subprocess.run(argv, env=env, capture_output=True, text=True)


def latest_weights(run_dir, tfds_dir):
    """The model weights of a run folder's newest checkpoint."""
    from tf_zoneout_train import config as config_lib
    from tf_zoneout_train import tasks

    config = config_lib.load(run_dir)
    task = tasks.get(config, tfds_dir)
    model = task.build_model()
    model(task.sample_batch())
    checkpoint = tf.train.Checkpoint(weights=list(model.variables))
    checkpoint.restore(tf.train.latest_checkpoint(str(run_dir / "checkpoints"))).expect_partial()
    return [v.numpy() for v in model.variables]


# -- multi-worker runs (two localhost workers) ----------------------------------------------------

# As small as seq2seq goes: the tests are about the workers agreeing, not about learning.
TINY_SEQ2SEQ = ["--units", "8", "--num-layers", "1", "--eval-examples", "16"]


def final_weights_digests(outputs) -> set[str]:
    """The distinct weight digests that processes' outputs report (each prints one
    ``final weights sha256`` line at the end of a run)."""
    digests = []
    for out in outputs:
        (line,) = [x for x in out.splitlines() if "final weights sha256" in x]
        digests.append(line.rsplit(" ", 1)[1])
    return set(digests)


def multi_worker_processes(run_dir, flags=(), resume=False, workers=2):
    """``zoneout train seq2seq --preset smoke --strategy multi_worker`` as ``workers`` localhost
    processes sharing ``run_dir`` (worker 0 is the chief); returns their Popen objects (output
    piped, text)."""
    import json
    import socket
    import subprocess
    import sys

    sockets = [socket.socket() for _ in range(workers)]
    for s in sockets:
        s.bind(("127.0.0.1", 0))
    addresses = [f"127.0.0.1:{s.getsockname()[1]}" for s in sockets]
    for s in sockets:
        s.close()
    processes = []
    for index in range(workers):
        tf_config = {"cluster": {"worker": addresses}, "task": {"type": "worker", "index": index}}
        env = {**os.environ, "TF_CONFIG": json.dumps(tf_config), "CUDA_VISIBLE_DEVICES": ""}
        argv = [sys.executable, "-m", "tf_zoneout_train.cli", "train", "seq2seq", "--preset", "smoke"]
        argv += ["--strategy", "multi_worker", *TINY_SEQ2SEQ, *flags, "--run-dir", str(run_dir)]
        argv += ["--resume"] if resume else []
        processes.append(
            subprocess.Popen(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
        )
    return processes
