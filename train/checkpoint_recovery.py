"""Resuming from the newest checkpoint that reads back whole; damaged ones set aside, not deleted.

A full disk or a failed copy can leave the newest checkpoint truncated, and a bad disk can flip its
bits. TensorFlow's checkpoints hold a CRC32C of every tensor, so reading every tensor back proves a
checkpoint whole; that is done with a reader of its own, before the model is restored from it (a
restore that fails half-way leaves pending restorations bound to the damaged file). The
candidates are the ``ckpt-N.index`` files on disk, newest first (the ``checkpoint`` state file may
be the damaged one); each that fails is moved into ``damaged/`` beside them, and the state file is
rewritten to list the survivors.
"""

from __future__ import annotations

import os
import re
import time
from pathlib import Path

import tensorflow as tf

from tf_zoneout.errors import ZoneoutError

DAMAGED_DIR = "damaged"
_CHECKPOINT = re.compile(r"^(?P<prefix>.+-(?P<number>\d+))\.index$")


class NoValidCheckpointError(ZoneoutError, RuntimeError):
    """Checkpoints exist, but none of them reads back whole."""


def checkpoints_on_disk(directory: Path) -> list[str]:
    """Checkpoint prefixes in ``directory`` (from their .index files), newest (highest number) first."""
    found = []
    for path in Path(directory).glob("*.index"):
        match = _CHECKPOINT.match(path.name)
        if match:
            found.append((int(match["number"]), str(Path(directory) / match["prefix"])))
    return [prefix for _, prefix in sorted(found, reverse=True)]


def set_aside(prefix: str) -> Path:
    """Move a checkpoint's files (index and data shards) into ``damaged/``; returns that folder."""
    source = Path(prefix)
    target = source.parent / DAMAGED_DIR
    target.mkdir(exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    for file in source.parent.glob(source.name + ".*"):
        file.rename(target / f"{file.name}.{stamp}")
    return target


def _rewrite_state(directory: Path, latest: str, survivors: list[str]) -> None:
    """The ``checkpoint`` state file listing the whole checkpoints, oldest first, with their times
    (so the CheckpointManager prunes them as usual), ``latest`` as the newest."""
    kept = [p for p in reversed(survivors)]
    times = [os.path.getmtime(p + ".index") for p in kept]
    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")  # the compat.v1 call warns that it is deprecated
    try:
        tf.compat.v1.train.update_checkpoint_state(
            str(directory),
            latest,
            all_model_checkpoint_paths=kept,
            all_model_checkpoint_timestamps=times,
            last_preserved_timestamp=min(times) - 1,
        )
    finally:
        logger.setLevel(level)


def read_every_tensor(prefix: str) -> int:
    """Read each tensor of a checkpoint (checking its CRC32C) without touching any model; returns
    how many there are. Raises whatever TensorFlow raises for the damage it finds."""
    reader = tf.train.load_checkpoint(prefix)
    names = list(reader.get_variable_to_dtype_map())
    for name in names:
        reader.get_tensor(name)
    return len(names)


def restore_newest_valid(
    checkpoint: tf.train.Checkpoint, directory: Path, say=print, set_damaged_aside: bool = True
) -> str | None:
    """Restore ``checkpoint`` from the newest whole checkpoint in ``directory``; None if there is none.

    Args:
        say: prints the one line naming each damaged checkpoint.
        set_damaged_aside: move each damaged checkpoint into ``damaged/`` and rewrite the state file
            (the folder's one writer does); False only reads, and skips them (the other workers of a
            multi-worker run, which pick the same checkpoint as the chief: one being moved away while
            they read it fails to read, as it does for the chief).

    Raises:
        NoValidCheckpointError: there were checkpoints and every one was damaged.
    """
    directory = Path(directory)
    candidates = checkpoints_on_disk(directory)
    survivors = list(candidates)
    for prefix in candidates:
        try:
            read_every_tensor(prefix)
        except Exception as error:  # what TensorFlow raises for a damaged file varies by damage
            reason = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
            survivors.remove(prefix)
            if not set_damaged_aside:
                continue
            aside = set_aside(prefix)
            say(f"checkpoint {prefix} is damaged ({reason[:200]}); moved to {aside}/, trying an older one")
            continue
        # Checkpoints of older versions of the loop may lack a variable added since (it keeps its
        # initial value), so only a match of something is required.
        checkpoint.restore(prefix).assert_nontrivial_match()
        if set_damaged_aside and len(survivors) < len(candidates):
            _rewrite_state(directory, prefix, survivors)
        return prefix
    if candidates:
        raise NoValidCheckpointError(
            f"every checkpoint in {directory} is damaged (moved to {directory / DAMAGED_DIR}/): this run "
            "cannot be resumed; start it again in a new --run-dir"
        )
    return None
