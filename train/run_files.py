"""Files of a run folder, written atomically: JSON and the learning-curve plot."""

from __future__ import annotations

import json
import os
from pathlib import Path


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as JSON via a temporary file and a rename (never half-written)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, indent=1, sort_keys=True) + "\n")
    tmp.replace(path)
    return path


def read_json(path: str | os.PathLike, default=None):
    path = Path(path)
    return json.loads(path.read_text()) if path.exists() else default


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
