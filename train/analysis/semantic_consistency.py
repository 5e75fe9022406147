"""Semantic consistency (paper sec. 5, toy): a linear 2-unit RNN h_t = h_{t-1} W.

W starts near -I and is trained so that h_T (T = seq_len, 10) equals h_0 = x. Without
zoneout, W = -I already solves it (ten sign flips cancel); with zoneout, a unit may
skip any step, so only a W that keeps each unit's meaning (W near +I) works.

Measured (docs/RESULTS.md): keep probability 0.9 (an update probability of 0.1, which is what
the original code's "zoneout 0.1" meant there) learns W = +I; keep probability 0.1
stays on the flat plateau between -I and +I.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import keras
import numpy as np
import tensorflow as tf

import tf_zoneout as tz
from tf_zoneout_train import run_files
from tf_zoneout_train.loop import Trainer
from tf_zoneout_train.tasks.base import Task

VALIDATION_EXAMPLES = 1000


class LinearRNN(keras.Model):
    """h_0 = x [B, 2]; h_t = zoneout(h_{t-1} W, h_{t-1}); returns h_T [B, 2]."""

    def __init__(self, steps: int, zoneout: float, seed: int, **kwargs):
        super().__init__(**kwargs)
        self.steps, self.zoneout_rate = steps, zoneout
        noise = np.random.default_rng(seed).normal(scale=0.05, size=(2, 2))
        self.w = self.add_weight(
            shape=(2, 2), initializer=keras.initializers.Constant(-np.eye(2) + noise), name="w"
        )
        self.seed_generator = keras.random.SeedGenerator(seed)

    def call(self, x, training=False):
        h = x
        for _ in range(self.steps):
            h = tz.zoneout(tf.matmul(h, self.w), h, self.zoneout_rate, training, seed=self.seed_generator)
        return h


class SemanticConsistencyTask(Task):
    metric = "mse"

    def build_model(self, jit_compile: bool | str = "auto"):
        return LinearRNN(self.config.seq_len, self.config.zoneout_states, self.config.seed)

    def sample_batch(self):
        return tf.zeros([1, 2])

    def tokens_per_batch(self) -> int:
        return self.config.batch_size * self.config.seq_len

    def train_batches(self, epoch: int) -> tf.data.Dataset:
        c = self.config
        rng = np.random.default_rng([c.seed, epoch])
        x = rng.normal(size=(c.batch_size * c.steps_per_epoch, 2)).astype("float32")
        return tf.data.Dataset.from_tensor_slices(x).batch(c.batch_size, drop_remainder=True)

    def loss(self, model, batch, carry, training: bool):
        error = tf.reduce_sum(tf.square(model(batch, training=training) - batch), axis=1)
        return tf.reduce_sum(error), tf.cast(tf.shape(batch)[0], tf.float32), []

    def evaluate(self, model, split: str) -> dict:
        seed = {"validation": 1, "test": 2}[split]
        x = np.random.default_rng([self.config.seed, 10_000 + seed]).normal(size=(VALIDATION_EXAMPLES, 2))
        x = tf.constant(x, tf.float32)
        mse = float(tf.reduce_mean(tf.reduce_sum(tf.square(model(x, training=False) - x), axis=1)))
        w = model.w.numpy()
        return {
            "loss": mse,
            "mse": mse,
            "w11": float(w[0, 0]),
            "w12": float(w[0, 1]),
            "w21": float(w[1, 0]),
            "w22": float(w[1, 1]),
        }

    def export(self, model, directory, metadata: dict) -> None:
        """A toy: nothing to serve."""


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(results) + 1, figsize=(4 * (len(results) + 1), 3.6))
    for ax, (name, result) in zip(axes, results.items()):
        w = np.asarray(result["w_final"])
        ax.imshow(w, cmap="coolwarm", vmin=-1.2, vmax=1.2)
        for (i, j), value in np.ndenumerate(w):
            ax.text(j, i, f"{value:+.2f}", ha="center", va="center")
        ax.set(title=f"learned W, {name}", xticks=[], yticks=[])
    trajectory_ax = axes[-1]
    for k, (name, result) in enumerate(results.items()):
        epochs = range(1, len(result["w11"]) + 1)
        trajectory_ax.plot(epochs, result["w11"], "-", color=f"C{k}", label=f"{name}: W11")
        trajectory_ax.plot(epochs, result["w22"], "--", color=f"C{k}", label=f"{name}: W22")
    trajectory_ax.axhline(1, color="gray", lw=0.5)
    trajectory_ax.axhline(-1, color="gray", lw=0.5)
    trajectory_ax.set(xlabel="epoch", ylabel="diagonal of W", title="W during training")
    trajectory_ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def zoneout_rates(config) -> list[float]:
    """The keep probabilities to compare, from ``compare`` ("0,0.1,0.9")."""
    try:
        rates = [float(v) for v in config.compare.split(",")]
    except ValueError:
        raise ValueError(
            f"--compare must list keep probabilities like 0,0.1,0.9; got {config.compare!r}"
        ) from None
    if not rates or any(not 0 <= r <= 1 for r in rates):
        raise ValueError(f"--compare rates must be in [0, 1]; got {config.compare!r}")
    return rates


def run(config, run_dir, tfds_dir=None, data_dir=None, resume=False) -> dict:
    """Train once per zoneout rate in ``compare``; write JSON + PNG with the learned W.

    ``tfds_dir`` and ``data_dir`` are unused: the data are generated."""
    run_dir = Path(run_dir)
    results = {}
    for z in zoneout_rates(config):
        name = f"zoneout {z:g}" if z else "no zoneout"
        variant = dataclasses.replace(config, zoneout_states=z, zoneout_cells=0.0)
        folder = run_dir / f"zoneout_{z:g}"
        metrics_file = folder / "metrics.json"
        if resume and "final" in run_files.read_json(metrics_file, {}):
            final = run_files.read_json(metrics_file)
        else:
            resume_variant = resume and (folder / "checkpoints" / "checkpoint").exists()
            Trainer(
                SemanticConsistencyTask(variant), folder, resume=resume_variant, show_progress=False
            ).run()
            final = run_files.read_json(metrics_file)
        epochs = final["epochs"]
        last = final["final"]["test"]
        results[name] = {
            "zoneout": z,
            "w_final": [[last["w11"], last["w12"]], [last["w21"], last["w22"]]],
            "test_mse": last["mse"],
            **{k: [e["validation"][k] for e in epochs] for k in ("w11", "w12", "w21", "w22", "mse")},
        }
    run_files.write_json(run_dir / "semantic_consistency.json", {"config": config.task, "results": results})
    plot(results, run_dir / "semantic_consistency.png")
    for name, result in results.items():
        w = np.round(np.asarray(result["w_final"]), 3).tolist()
        print(f"{name}: learned W = {w}, test MSE {result['test_mse']:.4f}")
    return results
