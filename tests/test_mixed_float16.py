"""mixed_float16 end to end: layers whose recurrence stays float32 (outputs and gradients against
float32 within stated tolerances), a smoke training run with loss scaling that exports float32, and
a loss scale that overflows float16 and recovers."""

from __future__ import annotations

import math

import keras
import numpy as np
import pytest
import tensorflow as tf
from test_training import mixed_precision_smoke_run, smoke

import tf_zoneout as tz
from tf_zoneout_train import loop

LAYERS = {
    "lstm": lambda: tz.ZoneoutLSTM(16, zoneout_cells=0.5, zoneout_states=0.05, return_sequences=True, seed=2),
    "gru": lambda: tz.ZoneoutGRU(16, zoneout=0.3, return_sequences=True, seed=2),
    "batch_norm_lstm": lambda: tz.RecurrentBatchNormLSTM(
        16, zoneout_cells=0.5, return_sequences=True, seed=2
    ),
}


@pytest.fixture
def float16_policy():
    keras.mixed_precision.set_global_policy("mixed_float16")
    yield
    keras.mixed_precision.set_global_policy("float32")


def _outputs_and_gradients(layer, x):
    with tf.GradientTape() as tape:
        outputs = layer(x, training=True)
        loss = tf.reduce_sum(tf.cast(outputs, tf.float32) ** 2)
    return outputs, tape.gradient(loss, layer.trainable_variables)


@pytest.mark.parametrize("name", sorted(LAYERS))
def test_float16_layers_match_float32_within_float16_input_precision(name, float16_policy):
    """Only the input projection (and the inputs) are float16: outputs within 1e-2 of float32's, and
    gradients within 2% (float16 has 11 significant bits: 5e-4 relative per rounding).

    The weights are seeded: the batch-norm LSTM's statistics over 4 rows amplify float16's rounding
    for some initial weights (measured over 30 unseeded draws: up to 1.8 times this bound in 6 of them,
    which made the test fail in whatever state earlier tests left the global seed; with seed 0 it uses
    0.11 of it, the LSTM and GRU 0.02-0.04 for any seed)."""
    keras.utils.set_random_seed(0)
    x = np.random.default_rng(0).normal(size=[4, 12, 5]).astype("float32")
    half = LAYERS[name]()
    half(x)
    keras.mixed_precision.set_global_policy("float32")
    full = LAYERS[name]()
    full(x)
    full.set_weights(half.get_weights())
    assert half.compute_dtype == "float16" and all(w.dtype == "float32" for w in half.weights)
    (got, got_grads), (want, want_grads) = _outputs_and_gradients(half, x), _outputs_and_gradients(full, x)
    assert got.dtype == tf.float16
    np.testing.assert_allclose(np.asarray(got, np.float32), want, atol=1e-2)
    for a, b in zip(got_grads, want_grads, strict=True):
        np.testing.assert_allclose(a, b, rtol=2e-2, atol=2e-2 * float(np.abs(b).max()))


def test_the_recurrence_runs_in_float32_under_float16(float16_policy, monkeypatch):
    """The fused loop gets float32 projections, weights and states (Keras reads the variables in
    float16, as its mixed precision does for every layer; the loop itself never rounds to float16)."""
    from tf_zoneout import kernels

    seen = []
    real_run = kernels.run

    def spy(step, xw, u, b, state0, *args, **kwargs):
        seen.append((xw.dtype, u.dtype, [s.dtype for s in state0]))
        return real_run(step, xw, u, b, state0, *args, **kwargs)

    monkeypatch.setattr(kernels, "run", spy)
    outputs = tz.ZoneoutLSTM(8, zoneout_cells=0.5, seed=1, jit_compile=False)(np.ones([2, 3, 4], "float32"))
    assert seen == [(tf.float32, tf.float32, [tf.float32, tf.float32])] and outputs.dtype == tf.float16


def test_a_mixed_float16_run_scales_its_loss_and_exports_float32(small_text8, tmp_path):
    trainer = mixed_precision_smoke_run(small_text8[0], tmp_path / "run", "mixed_float16", "float16")
    assert isinstance(trainer.optimizer, keras.optimizers.LossScaleOptimizer)


def test_an_overflowing_loss_scale_skips_steps_halves_and_recovers(small_text8, tmp_path, monkeypatch):
    """Started at 2**30, the scaled gradients overflow float16: those steps are skipped (the
    weights do not move) and the scale halves each time, until the steps go through."""
    tfds_dir, _ = small_text8
    monkeypatch.setattr(loop, "INITIAL_LOSS_SCALE", 2.0**30)
    trainer, final = smoke(
        "text8", tmp_path / "run", tfds_dir, precision="mixed_float16", epochs=1, steps_per_epoch=30
    )
    scale = float(trainer.optimizer.dynamic_scale.numpy())
    assert scale < 2.0**30 and math.log2(scale).is_integer()
    skipped = 30 - math.log2(2.0**30 / scale)
    assert int(trainer.optimizer.iterations.numpy()) == skipped  # the inner optimizer ran the rest
    assert all(np.isfinite(w).all() for w in trainer.model.get_weights())
    assert math.isfinite(final["test"]["bpc"])
