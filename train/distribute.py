"""How a run spreads over processes: the tf.distribute strategy by name, and the topology seam.

The trainer asks one ``Topology`` everything that differs between a run in one process (one device,
or mirrored over the local ones) and a worker of a multi-worker run (``TF_CONFIG``): whether it
writes the run folder, where it saves, how it guards the folder and catches signals, how it
restores, and whether TensorFlow's preemption handler coordinates its stop.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from pathlib import Path

import tensorflow as tf

from tf_zoneout_train import checkpoint_recovery, stop_signals
from tf_zoneout_train.config import ConfigError
from tf_zoneout_train.run_lock import RunLock


def make_strategy(name: str) -> tf.distribute.Strategy:
    """ "default" (one device), "mirrored" (all local GPUs, else the CPU) or "multi_worker" (TF_CONFIG)."""
    if name == "default":
        return tf.distribute.get_strategy()
    if name == "mirrored":
        return tf.distribute.MirroredStrategy()
    if name == "multi_worker":
        if "TF_CONFIG" not in os.environ:
            raise ConfigError(
                "--strategy multi_worker needs the TF_CONFIG environment variable (cluster and task)"
            )
        return tf.distribute.MultiWorkerMirroredStrategy()
    raise ConfigError(f"unknown strategy {name!r}")


def topology() -> Topology:
    """This process's topology: a cluster worker when ``TF_CONFIG`` is set, else a single process."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task")
    return ClusterWorker(task) if task is not None else Topology()


class Topology:
    """One process owns the run folder: it locks it, saves into it, and stops on its own signals."""

    chief = True
    name = "process"

    def folder(self, run_dir: Path, name: str) -> Path:
        """Where this process saves the checkpoints called ``name`` ("checkpoints", "best")."""
        return run_dir / name

    @contextlib.contextmanager
    def guard(self, run_dir: Path):
        """The run's context: the folder's lock held, and the ``StopSignals`` it yields."""
        with RunLock(run_dir), stop_signals.StopSignals() as signals:
            yield signals

    def restore(self, checkpoint: tf.train.Checkpoint, directory: Path) -> None:
        """Restore the newest whole checkpoint, setting damaged ones aside."""
        checkpoint_recovery.restore_newest_valid(checkpoint, directory)

    def preemption_handler(self, strategy, save_fn, exit_fn):
        """None: a single process stops through its own ``StopSignals``."""
        return None

    def close(self) -> None:
        """Remove what the run kept outside its folder (nothing here)."""


class ClusterWorker(Topology):
    """A worker of a multi-worker run: the chief writes the run folder, the others save scratch
    copies (saving is a collective); no worker locks the shared folder or stops alone: TensorFlow's
    ``PreemptionCheckpointHandler`` turns a SIGTERM to any of them into one save at an agreed step.

    Args:
        task: ``TF_CONFIG``'s task, e.g. ``{"type": "worker", "index": 1}``.
    """

    def __init__(self, task: dict):
        kind, self.index = task.get("type", "worker"), int(task.get("index", 0))
        self.chief = kind == "chief" or (kind == "worker" and self.index == 0)
        self.name = f"{kind} {self.index}"
        self._scratch: list[str] = []

    def folder(self, run_dir: Path, name: str) -> Path:
        if self.chief:
            return run_dir / name
        self._scratch.append(tempfile.mkdtemp(prefix=f"zoneout-worker-{name}-"))
        return Path(self._scratch[-1])

    @contextlib.contextmanager
    def guard(self, run_dir: Path):
        yield None

    def restore(self, checkpoint: tf.train.Checkpoint, directory: Path) -> None:
        # Every worker restores the chief's checkpoint, the same newest whole one; only the chief
        # moves damaged ones aside (one moved away while another worker reads it fails to read).
        checkpoint_recovery.restore_newest_valid(
            checkpoint, directory, **({} if self.chief else {"say": _silent, "set_damaged_aside": False})
        )

    def preemption_handler(self, strategy, save_fn, exit_fn):
        handler, scratch = stop_signals.preemption_handler(strategy, save_fn, exit_fn)
        self._scratch.append(scratch)
        return handler

    def close(self) -> None:
        for folder in self._scratch:
            shutil.rmtree(folder, ignore_errors=True)


def _silent(_line: str) -> None:
    pass
