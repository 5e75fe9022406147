"""Files of a run folder, written atomically: JSON (read with a clear error if damaged) and the
learning-curve plot."""

from __future__ import annotations

import os
from pathlib import Path

from tf_zoneout.saved_model import json_files
from tf_zoneout.saved_model.json_files import DamagedFileError, write_json

__all__ = ["DamagedFileError", "plot_learning_curve", "read_json", "write_json"]

# What to do about each damaged run file (the error says it).
FIXES = {
    "config.json": "restore it from a copy (it is written when a run starts and on each --resume), "
    "or start a new run in another --run-dir",
    "metrics.json": "move it aside to resume without the earlier epochs' records (the checkpoints "
    "hold the training state), or restore it from a copy",
}


def read_json(path: str | os.PathLike, *default, fix: str | None = None):
    """``json_files.read_json`` of a run file (the same rule for a missing file: ``default`` if
    given, else FileNotFoundError), with the fix that suits the file in the message of a damaged one.

    Args:
        path: the run file.
        *default: what a missing file reads as (none given: it must exist).
        fix: what to tell the user to do with a damaged file (default: the file's own advice).
    """
    fix = fix or FIXES.get(Path(path).name, "restore it from a copy, or start a new run")
    return json_files.read_json(path, *default, fix=fix)


def plot_learning_curve(history: list[dict], metric: str, path: str | os.PathLike, title: str) -> Path:
    """Train/validation loss and validation metric per epoch, side by side, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    epochs = [h["epoch"] + 1 for h in history]
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
    left.plot(epochs, [h["train_loss"] for h in history], "o-", label="train")
    left.plot(epochs, [h["validation"]["loss"] for h in history], "s-", label="validation")
    left.set(xlabel="epoch", ylabel="loss (nats)", title="loss")
    left.legend()
    right.plot(epochs, [h["validation"][metric] for h in history], "s-", color="C1", label="validation")
    train_metric = [h.get("train_metric") for h in history]
    if all(v is not None for v in train_metric):
        right.plot(epochs, train_metric, "o-", color="C0", label="train")
    right.set(xlabel="epoch", ylabel=metric, title=metric)
    right.legend()
    for axes in (left, right):
        axes.xaxis.set_major_locator(MaxNLocator(integer=True))
    fig.suptitle(title)
    # A fixed layout: tight_layout measures every label with an extra draw (half the time here).
    fig.subplots_adjust(left=0.08, right=0.98, bottom=0.12, top=0.84, wspace=0.25)
    path = Path(path)
    tmp = path.with_name(path.stem + ".tmp.png")
    fig.savefig(tmp, dpi=110)
    plt.close(fig)
    tmp.replace(path)
    return path
