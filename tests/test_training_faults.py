"""Training survives faults: SIGTERM, damaged checkpoints and run files, a second writer, longer runs.

Each case runs real processes or damages real files of real smoke runs (word_ptb: state carried
between batches, dropout and zoneout masks, checkpoints every 4 steps).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from conftest import (
    final_weights_digests,
    latest_weights,
    multi_worker_processes,
    shared_data_dir,
    train_argv,
)

from tf_zoneout_train import cli, tasks
from tf_zoneout_train import config as config_lib
from tf_zoneout_train.checkpoint_recovery import DAMAGED_DIR, checkpoints_on_disk
from tf_zoneout_train.loop import Trainer
from tf_zoneout_train.run_lock import LOCK_FILE, RunFolderInUseError, RunLock
from tf_zoneout_train.stop_signals import StopSignals


@pytest.fixture
def finished_run(tmp_path, smoke_run):
    """A copy of the session's finished word_ptb smoke run (checkpoints ckpt-8 and ckpt-10)."""
    shared_data_dir()
    _, straight, _ = smoke_run("word_ptb", with_trainer=False)
    copy = tmp_path / "run"
    shutil.copytree(straight, copy)
    return straight, copy


def assert_same_weights(a_dir, b_dir, tfds_dir):
    for a, b in zip(latest_weights(a_dir, tfds_dir), latest_weights(b_dir, tfds_dir)):
        np.testing.assert_allclose(a, b, atol=1e-6)


# -- SIGTERM / SIGINT ----------------------------------------------------------------------------


def test_sigterm_mid_epoch_checkpoints_and_resume_ends_with_the_uninterrupted_weights(tmp_path, tfds_dir):
    shared_data_dir()
    flags = ["--steps-per-epoch", "30"]
    reference = tmp_path / "reference"
    config = config_lib.resolve("word_ptb", "smoke", {"steps_per_epoch": 30})
    Trainer(tasks.get(config, tfds_dir), reference, show_progress=False).run()

    run_dir = tmp_path / "stopped"
    process = subprocess.Popen(train_argv(run_dir, tfds_dir, flags=flags), stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (run_dir / "checkpoints" / "ckpt-4.index").exists():  # the first periodic checkpoint
        assert process.poll() is None and time.monotonic() < deadline, process.stderr.read()[-3000:]
        time.sleep(0.02)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == 143, stderr[-3000:]
    (line,) = [x for x in stderr.splitlines() if "stopped on SIGTERM" in x]
    assert "holds the exact position" in line and "--resume" in line and "Traceback" not in stderr
    newest = checkpoints_on_disk(run_dir / "checkpoints")[0]
    # The checkpoint written at the stop (it may coincide with the periodic one at step 4).
    assert newest in line and int(newest.rsplit("-", 1)[1]) >= 4
    if ", step " in line:  # mid-epoch: numbered by the global step it stopped at (30 steps per epoch)
        epoch, step = (
            int(line.split(" at epoch ")[1].split(",")[0]),
            int(line.split(", step ")[1].split(" ")[0]),
        )
        assert newest.endswith(f"-{(epoch - 1) * 30 + step}")
    assert not (run_dir / "export").exists()

    resumed = subprocess.run(train_argv(run_dir, tfds_dir, resume=True), capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert_same_weights(reference, run_dir, tfds_dir)
    metrics = [json.loads((r / "metrics.json").read_text())["epochs"] for r in (reference, run_dir)]
    assert [e["train_loss"] for e in metrics[0]] == pytest.approx(
        [e["train_loss"] for e in metrics[1]], abs=1e-6
    )


def test_sigterm_to_one_worker_of_two_checkpoints_both_and_resume_ends_with_the_uninterrupted_weights(
    tmp_path,
):
    flags = [
        "--epochs",
        "1",
        "--train-examples",
        "3200",
        "--steps-per-epoch",
        "200",
        "--checkpoint-every",
        "3",
    ]
    reference = multi_worker_processes(tmp_path / "reference", flags)  # alongside, uninterrupted
    run_dir = tmp_path / "preempted"
    workers = multi_worker_processes(run_dir, flags)
    deadline = time.monotonic() + 300
    while not (run_dir / "checkpoints" / "ckpt-3.index").exists():  # the first periodic checkpoint
        assert all(p.poll() is None for p in workers) and time.monotonic() < deadline
        time.sleep(0.02)
    workers[1].send_signal(signal.SIGTERM)  # to the non-chief: the chief learns it from the cluster
    outputs = [p.communicate(timeout=300)[0] for p in workers]
    for p, out in zip(workers, outputs):
        assert p.returncode == 143, out[-3000:]
        (line,) = [x for x in out.splitlines() if "stopped on SIGTERM to a worker" in x]
        assert "every worker saved the exact position" in line and "--resume" in line
        assert "Traceback" not in out
    saved = line.split("(checkpoint ")[1].split(")")[0]  # the same step on every worker
    assert (
        all(saved in out for out in outputs) and (Path(saved).parent / (Path(saved).name + ".index")).exists()
    )
    assert int(saved.rsplit("-", 1)[1]) < 200 and not (run_dir / "export").exists()

    resumed = multi_worker_processes(run_dir, resume=True)
    outputs = {}
    for p in [*reference, *resumed]:
        outputs[p] = out = p.communicate(timeout=600)[0]
        assert p.returncode == 0, out[-3000:]
    assert len(final_weights_digests([outputs[p] for p in resumed])) == 1  # the workers agree
    for a, b in zip(latest_weights(tmp_path / "reference", None), latest_weights(run_dir, None)):
        np.testing.assert_allclose(a, b, atol=1e-6)


def test_the_first_signal_requests_a_stop_and_a_second_ctrl_c_stops_at_once():
    before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    with StopSignals() as stop:
        assert stop.requested is None
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.05)
        assert (stop.requested, stop.number) == ("SIGINT", signal.SIGINT)
        with pytest.raises(KeyboardInterrupt):
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(0.05)
    assert signal.getsignal(signal.SIGINT) is before  # restored


# -- damaged checkpoints -------------------------------------------------------------------------


def _damage(path, how):
    data = bytearray(path.read_bytes())
    if how == "truncate":
        path.write_bytes(bytes(data[: len(data) // 2]))
    else:  # flip one bit in the middle
        data[len(data) // 2] ^= 0x10
        path.write_bytes(bytes(data))


@pytest.mark.parametrize(
    "part, how", [("data", "truncate"), ("data", "flip"), ("index", "truncate"), ("index", "flip")]
)
def test_a_damaged_newest_checkpoint_is_set_aside_and_the_run_resumes_from_the_last_whole_one(
    finished_run, tfds_dir, capsys, part, how
):
    straight, run_dir = finished_run
    checkpoints = run_dir / "checkpoints"
    newest, older = checkpoints_on_disk(checkpoints)[:2]
    suffix = ".index" if part == "index" else ".data-00000-of-00001"
    _damage(checkpoints / (os.path.basename(newest) + suffix), how)
    Trainer(tasks.get(config_lib.load(run_dir), tfds_dir), run_dir, resume=True, show_progress=False).run()
    said = capsys.readouterr().out
    assert f"checkpoint {newest} is damaged" in said and "trying an older one" in said
    assert (
        sorted(p.name.split(".")[0] for p in (checkpoints / DAMAGED_DIR).iterdir())
        == [os.path.basename(newest)] * 2
    )  # its index and data file, set aside, not deleted
    # It went on from the older checkpoint and trained the steps again: the same weights.
    assert_same_weights(straight, run_dir, tfds_dir)
    assert checkpoints_on_disk(checkpoints) == [newest, older]  # the newest written again, whole


def test_every_checkpoint_damaged_gives_one_clear_error(finished_run, tfds_dir, capsys):
    _, run_dir = finished_run
    for prefix in checkpoints_on_disk(run_dir / "checkpoints"):
        _damage(run_dir / "checkpoints" / (os.path.basename(prefix) + ".data-00000-of-00001"), "truncate")
    status = cli.main(["train", "word_ptb", "--run-dir", str(run_dir), "--resume", "--tfds-dir", tfds_dir])
    err = capsys.readouterr().err
    assert status == 1 and "every checkpoint in" in err and "cannot be resumed" in err
    assert "Traceback" not in err


# -- damaged run files ---------------------------------------------------------------------------


def test_a_damaged_config_json_is_named_in_one_line(finished_run, tfds_dir, capsys):
    _, run_dir = finished_run
    (run_dir / "config.json").write_text('{"task": "word_ptb", "units": ')
    status = cli.main(["train", "word_ptb", "--run-dir", str(run_dir), "--resume"])
    err = capsys.readouterr().err
    assert status == 2 and f"{run_dir / 'config.json'} is damaged (not valid JSON" in err
    assert "restore it from a copy" in err and "Traceback" not in err
    (run_dir / "config.json").write_text('["not", "a", "configuration"]')
    assert cli.main(["train", "word_ptb", "--run-dir", str(run_dir), "--resume"]) == 2
    assert "holds no valid configuration" in capsys.readouterr().err


def test_a_damaged_metrics_json_is_named_in_one_line(finished_run, tfds_dir, capsys):
    _, run_dir = finished_run
    (run_dir / "metrics.json").write_bytes(b"\xff\xfe{")
    argv = [
        "train",
        "word_ptb",
        "--run-dir",
        str(run_dir),
        "--resume",
        "--epochs",
        "3",
        "--tfds-dir",
        tfds_dir,
    ]
    assert cli.main(argv) == 1
    err = capsys.readouterr().err
    assert f"{run_dir / 'metrics.json'} is damaged (not UTF-8 text)" in err and "move it aside" in err


def test_a_damaged_export_metadata_is_named_by_sample_and_skipped_by_the_service(smoke_run, tmp_path, capsys):
    from tf_zoneout.saved_model.model_base import publish

    shared_data_dir()
    _, straight, _ = smoke_run("char_ptb", with_trainer=False)
    version = publish(straight / "export", tmp_path / "models", "lm")
    (version / "metadata.json").write_text("{")
    assert cli.main(["sample", str(version), "--prompt", "the"]) == 1
    err = capsys.readouterr().err
    assert "metadata.json is damaged" in err and "export the run again" in err and "Traceback" not in err


def test_run_files_are_written_atomically(tmp_path, monkeypatch):
    """A crash while writing leaves the previous file whole (the new one goes to a temporary file)."""
    from tf_zoneout.saved_model import json_files

    path = json_files.write_json(tmp_path / "metrics.json", {"epochs": [1]})

    def crash(self, target):
        raise OSError("disk full")

    monkeypatch.setattr(type(path), "replace", crash)
    with pytest.raises(OSError, match="disk full"):
        json_files.write_json(path, {"epochs": [1, 2]})
    assert json.loads(path.read_text()) == {"epochs": [1]}


# -- one writer per run folder -------------------------------------------------------------------

HOLD_LOCK = """
import sys, time
from tf_zoneout_train.run_lock import RunLock
with RunLock(sys.argv[1]):
    print("locked", flush=True)
    time.sleep(120)
"""


def test_a_second_trainer_on_a_busy_run_folder_refuses_naming_the_first(finished_run, tfds_dir, capsys):
    _, run_dir = finished_run
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD_LOCK, str(run_dir)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout.readline().strip() == "locked"
        status = cli.main(
            ["train", "word_ptb", "--run-dir", str(run_dir), "--resume", "--tfds-dir", tfds_dir]
        )
        err = capsys.readouterr().err
        assert status == 1 and f"is in use by another trainer (pid {holder.pid} on host" in err
        with pytest.raises(RunFolderInUseError):
            RunLock(run_dir).__enter__()
    finally:
        holder.kill()
        holder.wait()
    # The holder died without cleaning up (SIGKILL): its lock file is stale and is taken over.
    assert (run_dir / LOCK_FILE).exists()
    with RunLock(run_dir):
        assert json.loads((run_dir / LOCK_FILE).read_text())["pid"] == os.getpid()


# -- extending a run -----------------------------------------------------------------------------


def test_resume_may_train_longer_and_records_it_but_keeps_the_model(finished_run, tfds_dir, capsys):
    _, run_dir = finished_run
    refused = cli.main(["train", "word_ptb", "--run-dir", str(run_dir), "--resume", "--units", "64"])
    err = capsys.readouterr().err
    assert refused == 2 and "'units': 64" in err and "--epochs" in err and "--patience" in err
    argv = ["train", "word_ptb", "--run-dir", str(run_dir), "--resume", "--epochs", "3", "--patience", "4"]
    assert cli.main([*argv, "--tfds-dir", tfds_dir]) == 0
    saved = json.loads((run_dir / "config.json").read_text())
    assert saved["epochs"] == 3 and saved["patience"] == 4
    (resume,) = saved["resumes"]
    before = config_lib.resolve("word_ptb", "smoke")
    assert resume["changed"] == {"epochs": [before.epochs, 3], "patience": [before.patience, 4]}
    assert len(json.loads((run_dir / "metrics.json").read_text())["epochs"]) == 3
    assert config_lib.load(run_dir).epochs == 3  # the record does not disturb loading
