"""tf.distribute strategies by name, and which process is the chief."""

from __future__ import annotations

import json
import os

import tensorflow as tf

from tf_zoneout_train.config import ConfigError


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


def worker_index() -> int:
    """This process's index among the workers (0 without TF_CONFIG)."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    return int(task.get("index", 0)) if task.get("type", "worker") in ("worker", "chief") else -1


def is_chief() -> bool:
    """The chief (or worker 0, or the only process) writes the run folder."""
    task = json.loads(os.environ.get("TF_CONFIG", "{}")).get("task", {})
    if not task:
        return True
    return task.get("type") == "chief" or (task.get("type") == "worker" and int(task.get("index", 0)) == 0)
