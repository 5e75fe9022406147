"""The training loop's guarantees: clear errors up front, exact resume, distributed runs."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf
from conftest import (
    final_weights_digests,
    latest_weights,
    multi_worker_processes,
    shared_data_dir,
    train_process,
)

from tf_zoneout_train import cli, tasks
from tf_zoneout_train import config as config_lib
from tf_zoneout_train.loop import RunFolderError, Trainer, TrainingDivergedError

# -- errors before any work ---------------------------------------------------------------------


@pytest.mark.parametrize(
    "argv, message",
    [
        (["train", "char_tpb"], "unknown task 'char_tpb'"),
        (["train", "char_ptb", "--preset", "huge"], "unknown preset 'huge'"),
        (["train", "char_ptb", "--zoneout-cells", "1.5"], "zoneout_cells=1.5 must be a probability"),
        (["train", "char_ptb", "--units", "many"], "--units: 'many' is not a valid int"),
        (["train", "char_ptb", "--zoneout-cell", "0.5"], "unknown flag --zoneout-cell"),
        (["train", "char_ptb", "--cell", "lstmm"], "cell='lstmm' is not one of"),
        (["train", "char_ptb", "--cell", "gru", "--zoneout-cells", "0.5"], "set zoneout_states (its h)"),
        (["train", "char_ptb", "--output-gate-zoneout", "true"], "set input_gate_dropout too"),
        (
            ["train", "char_ptb", "--cell", "rnn", "--zoneout-cells", "0", "--input-gate-dropout", "0.1"],
            "a tanh-RNN has no input gate",
        ),
        (["train", "char_ptb", "--share-mask", "maybe"], "--share-mask: 'maybe' is not a valid bool"),
        (["train", "pmnist", "--cell", "bn_lstm", "--variational-input", "0.2"], "not variational_dropout"),
        (["train", "word_ptb", "--variational-recurrent", "1.0"], "`variational_dropout` must be < 1"),
        (["train", "char_ptb", "--units"], "--units needs a value"),
    ],
)
def test_bad_task_or_flag_fails_before_any_work(argv, message, tmp_path, capsys):
    run_dir = tmp_path / "run"
    assert cli.main([*argv, "--run-dir", str(run_dir)] if argv[-1] != "--units" else argv) == 2
    assert message in capsys.readouterr().err
    assert not run_dir.exists()


def test_overrides_are_typed_and_presets_resolve_for_every_task():
    for task in config_lib.TASKS:
        for preset in ("paper", "cpu", "smoke"):
            assert config_lib.resolve(task, preset).task == task
    assert config_lib.resolve("char_ptb", "demo").units == 256
    with pytest.raises(config_lib.ConfigError, match="not defined for pmnist"):
        config_lib.resolve("pmnist", "demo")
    overrides = config_lib.parse_overrides(["--zoneout-cells=0.25", "--share-mask", "yes", "--units", "64"])
    assert overrides == {"zoneout_cells": 0.25, "share_mask": True, "units": 64}
    config = config_lib.resolve("char_ptb", "paper")
    assert (config.units, config.batch_size, config.zoneout_cells, config.zoneout_states) == (
        1000,
        32,
        0.5,
        0.05,
    )


def test_existing_run_folder_needs_resume(tmp_path):
    config = config_lib.resolve("semantic_consistency", "smoke")
    from tf_zoneout_train.analysis.semantic_consistency import SemanticConsistencyTask

    Trainer(SemanticConsistencyTask(config), tmp_path, show_progress=False).run()
    with pytest.raises(RunFolderError, match="--resume"):
        Trainer(SemanticConsistencyTask(config), tmp_path)
    with pytest.raises(RunFolderError, match="no checkpoint"):
        Trainer(SemanticConsistencyTask(config), tmp_path / "empty", resume=True)


def test_nan_guard_stops_and_keeps_the_last_good_checkpoint(tmp_path):
    from tf_zoneout_train.analysis.semantic_consistency import SemanticConsistencyTask

    config = config_lib.resolve(
        "semantic_consistency", "smoke", {"learning_rate": 1e6, "optimizer": "sgd", "checkpoint_every": 1}
    )
    with pytest.raises(TrainingDivergedError, match=r"Last good checkpoint: .*ckpt-") as raised:
        Trainer(SemanticConsistencyTask(config), tmp_path, show_progress=False).run()
    assert "Lower --learning-rate" in str(raised.value)
    assert tf.train.latest_checkpoint(str(tmp_path / "checkpoints"))


# -- kill and resume ------------------------------------------------------------------------------


def test_killed_and_resumed_run_ends_with_the_same_weights(tmp_path, capsys, smoke_run, tfds_dir):
    shared_data_dir()
    # word_ptb smoke: contiguous batches with the state carried, dropout and zoneout masks,
    # SGD with a decaying rate; checkpoints every 4 steps, 5 steps per epoch, 2 epochs.
    # The uninterrupted reference is the session's shared word_ptb smoke run (same preset).
    # Only the killed run needs a process of its own; the resumed one runs here.
    _, straight, _ = smoke_run("word_ptb", with_trainer=False)
    killed = train_process(tmp_path / "killed", tfds_dir, kill_at_step=7)
    assert killed.returncode == -9  # SIGKILL: mid-epoch 2, three steps after the last checkpoint
    assert not (tmp_path / "killed" / "export").exists()
    resumed = Trainer(
        tasks.get(config_lib.load(tmp_path / "killed"), tfds_dir), tmp_path / "killed", resume=True
    )
    resumed.show_progress = True  # its "resuming ..." line is checked below
    resumed.run()
    assert "resuming" in capsys.readouterr().out
    for a, b in zip(latest_weights(straight, tfds_dir), latest_weights(tmp_path / "killed", tfds_dir)):
        np.testing.assert_allclose(a, b, atol=1e-6)
    metrics = [json.loads((run / "metrics.json").read_text()) for run in (straight, tmp_path / "killed")]
    assert [e["train_loss"] for e in metrics[0]["epochs"]] == pytest.approx(
        [e["train_loss"] for e in metrics[1]["epochs"]], abs=1e-6
    )


# -- distributed ----------------------------------------------------------------------------------


def test_two_worker_multi_worker_mirrored_run_ends_with_identical_weights(tmp_path):
    flags = ["--epochs", "1", "--train-examples", "64", "--steps-per-epoch", "2"]
    processes = multi_worker_processes(tmp_path / "run", flags)
    outputs = [p.communicate(timeout=600)[0] for p in processes]
    for p, out in zip(processes, outputs):
        assert p.returncode == 0, out[-3000:]
    assert len(final_weights_digests(outputs)) == 1
    assert (tmp_path / "run" / "export" / "saved_model.pb").exists()


# Without zoneout the toy linear RNN is deterministic.
_MIRRORED_OVERRIDES = {"zoneout_states": 0.0, "learning_rate": 0.05}
_TWO_REPLICA_PROBE = """
import json, sys
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
from tf_zoneout_train import config as config_lib
from tf_zoneout_train.analysis.semantic_consistency import SemanticConsistencyTask
from tf_zoneout_train.loop import Trainer
config = config_lib.resolve("semantic_consistency", "smoke", json.loads(sys.argv[1]))
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
# Count the all-reduces of lists (the gradients) made while the training step is traced.
reduced_lists = []
real_all_reduce = tf.distribute.ReplicaContext.all_reduce
def counting_all_reduce(self, reduce_op, value, options=None):
    if isinstance(value, (list, tuple)):
        reduced_lists.append(len(value))
    return real_all_reduce(self, reduce_op, value, options)
tf.distribute.ReplicaContext.all_reduce = counting_all_reduce
trainer = Trainer(SemanticConsistencyTask(config), sys.argv[2], show_progress=False, strategy=strategy)
trainer.run()
json.dump({
    "weights": [w.tolist() for w in trainer.model.get_weights()],
    "gradient_all_reduces": reduced_lists,
    "traces": trainer.train_step.experimental_get_tracing_count(),
    "variables": len(trainer.model.trainable_variables),
}, open(sys.argv[3], "w"))
"""


@pytest.mark.xla_kernel  # the one end-to-end run that keeps XLA loops inside a distribution strategy
def test_mirrored_two_replicas_compute_the_single_device_update(tmp_path):
    # Two replicas with half the batch each must give the same weights as one device with the
    # whole batch (loss scaling). The two-replica run needs a process of its own (logical devices
    # are set before TensorFlow starts); the one-replica reference runs here, under the same
    # strategy class.
    from tf_zoneout_train.analysis.semantic_consistency import SemanticConsistencyTask

    config = config_lib.resolve("semantic_consistency", "smoke", _MIRRORED_OVERRIDES)
    strategy = tf.distribute.MirroredStrategy(["/cpu:0"])
    reference = Trainer(
        SemanticConsistencyTask(config), tmp_path / "run-1", show_progress=False, strategy=strategy
    )
    reference.run()
    out = tmp_path / "weights-2.json"
    argv = [
        sys.executable,
        "-c",
        _TWO_REPLICA_PROBE,
        json.dumps(_MIRRORED_OVERRIDES),
        str(tmp_path / "run-2"),
        str(out),
    ]
    done = subprocess.run(argv, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(out.read_text())
    two = [np.asarray(w) for w in result["weights"]]
    for one, other in zip(reference.model.get_weights(), two):
        np.testing.assert_allclose(one, other, rtol=1e-4, atol=1e-5)
    # One all-reduce of the gradients per replica per trace of the step: the optimizer adds none.
    assert result["gradient_all_reduces"] == [result["variables"]] * (2 * result["traces"])


_SYNCED_BATCH_NORM_PROBE = """
import json, sys
import numpy as np
import tensorflow as tf
cpu = tf.config.list_physical_devices("CPU")[0]
tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
import tf_zoneout as tz
x = np.random.default_rng(0).normal(size=[8, 5, 3]).astype("float32")
def built(weights=None):
    layer = tz.RecurrentBatchNormLSTM(6, max_timesteps=5, momentum=0.5, seed=1, jit_compile=False)
    layer(x[:1])
    if weights is not None:
        layer.set_weights(weights)
    return layer
single = built()
start = [w.numpy() for w in single.weights]  # the populations still at their (0, 1) start
single(x, training=True)
def own_statistics(part):  # with momentum 0.5 from (0, 1): statistic = 2 * population - start
    alone = built(start)
    alone(part, training=True)
    return {n: 2 * np.asarray(v) - n.startswith("variance") for n, v in alone.population.items()}
a, b = own_statistics(x[:4]), own_statistics(x[4:])
combined = {}
for which in "xhc":
    m_a, m_b = a["mean_" + which], b["mean_" + which]
    v_a, v_b = a["variance_" + which], b["variance_" + which]
    mean = (m_a + m_b) / 2
    variance = (v_a + m_a**2 + v_b + m_b**2) / 2 - mean**2
    combined["mean_" + which], combined["variance_" + which] = 0.5 * mean, 0.5 + 0.5 * variance
strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
with strategy.scope():
    layer = built(start)
halves = strategy.experimental_distribute_values_from_function(
    lambda context: x[4 * context.replica_id_in_sync_group : 4 * (context.replica_id_in_sync_group + 1)]
)
strategy.run(tf.function(lambda batch: layer(batch, training=True)), args=(halves,))
json.dump({
    name: [np.asarray(single.population[name]).tolist(), combined[name].tolist(),
           [np.asarray(r).tolist() for r in strategy.experimental_local_results(layer.population[name])]]
    for name in layer.population
}, open(sys.argv[1], "w"))
"""


def test_batch_norm_population_statistics_are_those_of_the_global_batch(tmp_path):
    """Two replicas of 4 examples each: every replica normalizes with its own batch (as Keras's
    unsynchronized BatchNormalization), and the population statistics they both store are the mean
    and variance of the union of the two halves' batches: for the input projection, exactly one
    device's on all 8; for h and c (whose values depend on each half's normalization), the exact
    combination of the halves' own statistics."""
    out = tmp_path / "population.json"
    done = subprocess.run(
        [sys.executable, "-c", _SYNCED_BATCH_NORM_PROBE, str(out)], capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr[-3000:]
    for name, (single, combined, replicas) in json.loads(out.read_text()).items():
        expected = single if name.endswith("_x") else combined
        for replica in replicas:
            np.testing.assert_allclose(replica, expected, rtol=1e-4, atol=1e-6, err_msg=name)


def test_progress_bar_updates_rarely_when_stderr_is_a_file(monkeypatch):
    import io

    from tf_zoneout_train.loop import progress_interval

    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert progress_interval() == 30.0
    terminal = io.StringIO()
    terminal.isatty = lambda: True
    monkeypatch.setattr(sys, "stderr", terminal)
    assert progress_interval() == 0.1


def test_learning_curve_is_redrawn_at_most_every_plot_interval(tmp_path, monkeypatch):
    from tf_zoneout_train import loop, run_files
    from tf_zoneout_train.analysis.semantic_consistency import SemanticConsistencyTask

    drawn = []  # epochs in the history at each drawing
    monkeypatch.setattr(run_files, "plot_learning_curve", lambda history, *args: drawn.append(len(history)))
    config = config_lib.resolve("semantic_consistency", "smoke", {"epochs": 3, "steps_per_epoch": 2})
    Trainer(SemanticConsistencyTask(config), tmp_path / "fast", show_progress=False).run()
    assert drawn == [3]  # epochs of a fraction of a second: only the final drawing
    drawn.clear()
    monkeypatch.setattr(loop, "PLOT_EVERY_SECONDS", 0.0)  # as if every epoch took longer than the interval
    Trainer(SemanticConsistencyTask(config), tmp_path / "slow", show_progress=False).run()
    assert drawn == [1, 2, 3, 3]  # after each epoch, and at the end
