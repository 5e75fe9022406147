"""Recurrent batch normalization: batch vs population statistics, a NumPy step, zoneout, round trips."""

from __future__ import annotations

import keras
import numpy as np
import pytest

import tf_zoneout as tz

B, T, FEATURES, H = 8, 5, 3, 4


def _x(batch=B, steps=T, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, FEATURES)).astype("float32")


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def _bn(v, mean, var, gamma, beta=0.0):
    return (v - mean) / np.sqrt(var + 1e-5) * gamma + beta


def _numpy_step(layer, x, h, c, stats=None):
    """One BN-LSTM step; stats=None: batch statistics, else (mx, vx, mh, vh, mc, vc) of step 0."""
    w = {v.name: np.asarray(v) for v in layer.weights}
    xw, rec = x @ w["kernel"], h @ w["recurrent_kernel"]
    mx, vx = (xw.mean(0), xw.var(0)) if stats is None else stats[0:2]
    mh, vh = (rec.mean(0), rec.var(0)) if stats is None else stats[2:4]
    z = _bn(xw, mx, vx, w["gamma_x"]) + _bn(rec, mh, vh, w["gamma_h"]) + w["bias"]
    i, f, g, o = np.split(z, 4, -1)
    c_new = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
    mc, vc = (c_new.mean(0), c_new.var(0)) if stats is None else stats[4:6]
    return _sigmoid(o) * np.tanh(_bn(c_new, mc, vc, w["gamma_c"], w["beta_c"])), c_new


def test_one_training_step_matches_numpy_with_batch_statistics():
    layer = tz.RecurrentBatchNormLSTM(H, return_state=True)
    x = _x(steps=1)
    rng = np.random.default_rng(1)
    h0, c0 = (rng.normal(size=(B, H)).astype("float32") for _ in range(2))
    _, h, c = layer(x, initial_state=[h0, c0], training=True)
    ref_h, ref_c = _numpy_step(layer, x[:, 0], h0, c0)
    np.testing.assert_allclose(h, ref_h, atol=1e-5)
    np.testing.assert_allclose(c, ref_c, atol=1e-5)


def test_gamma_starts_at_a_tenth():
    layer = tz.RecurrentBatchNormLSTM(H)
    layer(_x())
    for name in ("gamma_x", "gamma_h", "gamma_c"):
        np.testing.assert_allclose(next(np.asarray(v) for v in layer.weights if v.name == name), 0.1)


def test_inference_uses_population_statistics():
    layer = tz.RecurrentBatchNormLSTM(H, max_timesteps=3, momentum=0.5, return_sequences=True)
    x = _x()
    before = [np.asarray(v).copy() for v in layer.non_trainable_weights] if layer.built else None
    layer(x, training=True)
    moved = {v.name: np.asarray(v) for v in layer.non_trainable_weights}
    assert before is None or any(
        not np.array_equal(a, moved[v.name]) for a, v in zip(before, layer.non_trainable_weights)
    )
    assert np.abs(moved["mean_x"][:3]).max() > 0 and np.all(moved["variance_x"][:3] != 1.0)
    # At inference an example's output does not depend on the rest of the batch...
    full = np.asarray(layer(x, training=False))
    alone = np.asarray(layer(x[:1], training=False))
    np.testing.assert_allclose(alone[0], full[0], atol=1e-5)
    # ...while in training it does (batch statistics).
    train_full = np.asarray(layer(x, training=True))
    train_alone_pair = np.asarray(layer(x[:2], training=True))
    assert np.abs(train_full[0] - train_alone_pair[0]).max() > 1e-4
    # And step 0 at inference is the NumPy step with the population statistics of step 0.
    stats = {v.name: np.asarray(v) for v in layer.non_trainable_weights}
    step0 = tuple(
        stats[k][0] for k in ("mean_x", "variance_x", "mean_h", "variance_h", "mean_c", "variance_c")
    )
    ref_h, _ = _numpy_step(layer, x[:, 0], np.zeros((B, H)), np.zeros((B, H)), step0)
    np.testing.assert_allclose(np.asarray(layer(x, training=False))[:, 0], ref_h, atol=1e-5)
    # Steps beyond max_timesteps reuse the last step's statistics (T=5 > 3 runs).
    assert np.all(np.isfinite(layer(_x(steps=7), training=False)))


def test_zoneout_one_freezes_and_shared_mask_zones_out_together():
    frozen = tz.RecurrentBatchNormLSTM(H, zoneout_cells=1.0, zoneout_states=1.0, return_state=True, seed=1)
    rng = np.random.default_rng(2)
    h0, c0 = (rng.normal(size=(B, H)).astype("float32") for _ in range(2))
    _, h, c = frozen(_x(), initial_state=[h0, c0], training=True)
    np.testing.assert_array_equal(h, h0)
    np.testing.assert_array_equal(c, c0)
    shared = tz.RecurrentBatchNormLSTM(
        H, zoneout_cells=0.5, zoneout_states=0.5, share_mask=True, return_state=True, seed=3
    )
    x = _x(batch=200, steps=1)
    h0, c0 = (rng.normal(size=(200, H)).astype("float32") for _ in range(2))
    _, h, c = shared(x, initial_state=[h0, c0], training=True)
    np.testing.assert_array_equal(np.asarray(h) == h0, np.asarray(c) == c0)


def test_trains_in_fit_and_round_trips(tmp_path):
    model = keras.Sequential(
        [
            keras.Input((T, FEATURES)),
            tz.RecurrentBatchNormLSTM(H, zoneout_cells=0.15, seed=1),
            keras.layers.Dense(1),
        ]
    )
    model.compile("adam", "mse")
    x, y = _x(batch=32), np.ones((32, 1))
    history = model.fit(x, y, epochs=5, verbose=0)
    assert history.history["loss"][-1] < history.history["loss"][0]
    model.save(tmp_path / "bn.keras")
    loaded = keras.models.load_model(tmp_path / "bn.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"units": 0}, "units"),
        ({"units": 4, "zoneout_cells": 2.0}, "zoneout_cells"),
        ({"units": 4, "max_timesteps": 0}, "max_timesteps"),
    ],
)
def test_bad_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        tz.RecurrentBatchNormLSTM(**kwargs)


@pytest.mark.parametrize("zoneout", [True, False], ids=["zoneout", "plain"])
@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_hand_written_gradient_matches_autodiff_of_the_loop(jit_compile, zoneout):
    """The hand-written BPTT (compiled with XLA or as a graph) must equal TensorFlow's autodiff
    of the same loop, through the per-step batch statistics and the zoneout masks."""
    import tensorflow as tf

    from tf_zoneout.kernels.batch_norm_lstm import forward, recurrence

    rng = np.random.default_rng(3)
    steps, batch = 6, 5
    args = tuple(
        tf.constant(rng.normal(scale=0.5, size=shape).astype("float32"))
        for shape in ([steps, batch, 4 * H], [H, 4 * H], [4 * H], [H], [H], [batch, H], [batch, H])
    )
    keeps = tuple(tf.constant(rng.random([steps, batch, H]) < rate) for rate in (0.3, 0.6))
    keeps = keeps if zoneout else (None, None)
    weights = [
        tf.constant(rng.normal(size=shape).astype("float32")) for shape in ([steps, batch, H], [batch, H])
    ]

    def grads(run):
        with tf.GradientTape() as tape:
            tape.watch(args)
            h_seq, h, c, _ = run()
            loss = tf.reduce_sum(h_seq * weights[0]) + tf.reduce_sum((h + 2 * c) * weights[1])
        return [np.asarray(g) for g in tape.gradient(loss, args)], np.asarray(h_seq)

    expected, expected_h = grads(lambda: forward(*args, keeps, None)[:4])
    actual, actual_h = grads(lambda: recurrence(args, keeps, None, jit_compile))
    np.testing.assert_allclose(actual_h, expected_h, rtol=1e-5, atol=1e-6)
    for got, want in zip(actual, expected, strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-5)
