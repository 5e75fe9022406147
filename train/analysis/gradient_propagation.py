"""Gradient propagation (paper Fig. 6): how much gradient reaches each time step.

Each compared model is trained on pMNIST for ``epochs`` (one, in the paper) with the
common loop; then, for a batch of training images and a grid of steps t, the loss at
the end of the sequence is differentiated with respect to the cell state c_t: the
sequence is run up to t, and from t on with c_t as the initial state, so the
gradient with respect to that initial state is exactly dL/dc_t. The figure shows
mean ||dL/dc_t|| over the batch, normalized by its sum over the grid.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_zoneout.models.recurrent import make_recurrent_layer
from tf_zoneout_train import run_files
from tf_zoneout_train.loop import Trainer
from tf_zoneout_train.tasks.base import recurrent_spec
from tf_zoneout_train.tasks.pmnist import PmnistTask

VARIANTS = {
    "zoneout": dict(zoneout_cells=0.5, zoneout_states=0.0),
    "recurrent_dropout": dict(input_gate_dropout=0.5, zoneout_cells=0.0, zoneout_states=0.0),
    "unregularized": dict(zoneout_cells=0.0, zoneout_states=0.0),
}
GRID_POINTS = 50


def variant_config(config, name: str):
    """The pmnist configuration of one compared model."""
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r} in --compare; choose from {', '.join(VARIANTS)}")
    return dataclasses.replace(config, task="pmnist", cell="lstm", **VARIANTS[name])


def cell_gradient_norms(model, config, x, y, steps, max_rows: int = 512) -> np.ndarray:
    """Mean over the batch of ||dL/dc_t|| for each t in ``steps`` (training mode: regularizers on).

    Args:
        x: [B, T, 1] images as sequences; y: [B] labels; steps: the grid of t in [0, T).
        max_rows: rows per probe call; several grid points share a call, each with its own copy
            of the batch ([G*B, T, 1]), so the loop runs once for G grid points.

    Every call of the probe layer reads the full T steps, with a step mask selecting the
    prefix [0, t) or the suffix [t, T) of each row: masked steps keep the state, so the
    prefix's final state is the state at t and the suffix starts from it. One shape for
    every call means one traced loop. Returns [len(steps)]."""
    trained = model.rnn_layers[-1]
    probe = make_recurrent_layer(
        recurrent_spec(config, max_timesteps=784, jit_compile=False),
        config.seed + 99,
        return_sequences=False,
        return_state=True,
    )
    probe(x[:, :1])
    probe.set_weights(trained.get_weights())
    batch, length = int(x.shape[0]), int(x.shape[1])
    per_call = max(1, min(len(steps), max_rows // batch))
    padded = list(steps) + [steps[-1]] * (-len(steps) % per_call)  # equal groups: one trace
    xs, ys = tf.tile(x, [per_call, 1, 1]), tf.tile(y, [per_call])  # grid point i: rows [iB, (i+1)B)
    norms = []
    for start in range(0, len(padded), per_call):
        t_of_row = tf.repeat(tf.constant(padded[start : start + per_call]), batch)  # [G*B]
        before = tf.range(length)[None, :] < t_of_row[:, None]  # [G*B, T]
        _, h, c = probe(xs, mask=before, training=True)  # t = 0: no step read, the zero state
        with tf.GradientTape() as tape:
            tape.watch(c)
            out, _, _ = probe(xs, initial_state=[h, c], mask=~before, training=True)  # out = h_{T-1}
            logits = model.readout(out)
            per_row = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ys, logits=logits)
            loss = tf.reduce_sum(per_row) / batch  # the sum of each grid point's batch mean
        row_norms = tf.norm(tape.gradient(loss, c), axis=1)  # [G*B]
        norms.extend(tf.reduce_mean(tf.reshape(row_norms, [per_call, batch]), axis=1).numpy().tolist())
    return np.asarray(norms[: len(steps)])


def plot(steps, results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4))
    for name, result in results.items():
        ax.plot(steps, result["normalized"], "-", label=name)
    ax.set_yscale("log")
    ax.set(
        xlabel="time step t",
        ylabel="||dL/dc_t||, normalized over t",
        title="Gradient reaching each step (pMNIST, after training)",
    )
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def run(config, run_dir, tfds_dir=None, data_dir=None, resume=False) -> dict:
    """Train one pMNIST model per ``compare`` variant; write JSON + PNG of the gradient norms."""
    run_dir = Path(run_dir)
    names = [n.strip() for n in config.compare.split(",") if n.strip()]
    configs = {name: variant_config(config, name) for name in names}  # errors before any work
    steps = np.unique(np.linspace(0, 783, GRID_POINTS).astype(int)).tolist()
    results = {}
    for name, variant in configs.items():
        folder = run_dir / name
        task = PmnistTask(variant, tfds_dir, data_dir)
        trainer = Trainer(task, folder, resume=resume and (folder / "checkpoints" / "checkpoint").exists())
        trainer.run()
        x, y = next(iter(task._batches("train")))
        norms = cell_gradient_norms(trainer.model, variant, x, y, steps)
        results[name] = {
            "norms": norms.tolist(),
            "normalized": (norms / norms.sum()).tolist(),
            "first_to_last_ratio": float(norms[0] / norms[-1]),
        }
        print(f"{name}: ||dL/dc_0|| / ||dL/dc_783|| = {results[name]['first_to_last_ratio']:.3g}")
    run_files.write_json(run_dir / "gradient_propagation.json", {"steps": steps, "results": results})
    plot(steps, results, run_dir / "gradient_propagation.png")
    return results
