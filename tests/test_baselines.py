"""The paper's baselines as layer arguments: each method's defining property, with numbers."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_zoneout as tz

B, T, FEATURES, H = 4, 6, 3, 5


def _x(steps=T, seed=0):
    return np.random.default_rng(seed).normal(size=(B, steps, FEATURES)).astype("float32")


def _init(n):
    return [np.random.default_rng(10 + i).normal(size=(B, H)).astype("float32") for i in range(n)]


def _sigmoid(v):
    return 1 / (1 + np.exp(-v))


def test_lstm_input_gate_dropout_one_gives_forget_only_cells():
    layer = tz.ZoneoutLSTM(H, input_gate_dropout=1.0, return_state=True, seed=1)
    x = _x(steps=1)
    h0, c0 = _init(2)
    _, _, c1 = layer(x, initial_state=[h0, c0], training=True)
    kernel, recurrent, bias = layer.get_weights()
    f = _sigmoid(np.split(x[:, 0] @ kernel + h0 @ recurrent + bias, 4, -1)[1])
    np.testing.assert_allclose(c1, f * c0, rtol=1e-6, atol=1e-7)
    # At inference the update is scaled by its keep probability (here 0).
    _, _, c_inf = layer(x, initial_state=[h0, c0], training=False)
    np.testing.assert_allclose(c_inf, f * c0, rtol=1e-6, atol=1e-7)


def test_gru_input_gate_dropout_one_drops_the_candidate():
    layer = tz.ZoneoutGRU(H, input_gate_dropout=1.0, return_state=True, seed=1)
    x = _x(steps=1)
    (h0,) = _init(1)
    _, h1 = layer(x, initial_state=[h0], training=True)
    kernel, recurrent, bias = layer.get_weights()
    xz = (x[:, 0] @ kernel + bias[0])[:, :H]
    rz = (h0 @ recurrent + bias[1])[:, :H]
    np.testing.assert_allclose(h1, _sigmoid(xz + rz) * h0, rtol=1e-6, atol=1e-7)


def test_input_gate_dropout_drops_about_p_of_the_updates():
    """From a zero state, c_1 = d_1 * i_1 * g_1: exactly zero where the update was dropped."""
    layer = tz.ZoneoutLSTM(64, input_gate_dropout=0.3, return_state=True, seed=2)
    x = np.random.default_rng(1).normal(size=(500, 1, FEATURES)).astype("float32")
    _, _, c = layer(x, training=True)
    c = np.asarray(c)
    dropped = np.mean(c == 0)
    assert abs(dropped - 0.3) < 6 * np.sqrt(0.3 * 0.7 / c.size) + 2**-16


@pytest.mark.parametrize("cls, n_states", [(tz.ZoneoutLSTM, 2), (tz.ZoneoutGRU, 1), (tz.ZoneoutSimpleRNN, 1)])
def test_stochastic_depth_one_freezes_the_state(cls, n_states):
    layer = cls(H, stochastic_depth=1.0, return_sequences=True, return_state=True, seed=1)
    init = _init(n_states)
    outputs, *final = layer(_x(), initial_state=init, training=True)
    np.testing.assert_array_equal(np.asarray(outputs), np.broadcast_to(init[0][:, None], outputs.shape))
    for a, b in zip(final, init):
        np.testing.assert_array_equal(a, b)


def test_stochastic_depth_zones_out_whole_examples():
    layer = tz.ZoneoutLSTM(32, stochastic_depth=0.4, return_sequences=True, seed=3)
    x = np.random.default_rng(0).normal(size=(64, 30, FEATURES)).astype("float32")
    out = np.asarray(layer(x, training=True))
    kept = out[:, 1:] == out[:, :-1]  # [B, T-1, H]
    whole = kept.all(-1)
    np.testing.assert_array_equal(kept.any(-1), whole)  # all units of an example together
    assert abs(whole.mean() - 0.4) < 6 * np.sqrt(0.4 * 0.6 / whole.size)


@pytest.mark.parametrize("cls", [tz.ZoneoutLSTM, tz.ZoneoutGRU, tz.ZoneoutSimpleRNN])
def test_weight_noise(cls):
    noisy = cls(H, weight_noise=0.075, return_sequences=True, seed=1)
    clean = cls(H, return_sequences=True)
    x = _x()
    noisy(x)
    clean(x)
    clean.set_weights(noisy.get_weights())
    before = [w.copy() for w in noisy.get_weights()]
    train_out = noisy(x, training=True)
    for a, b in zip(before, noisy.get_weights()):
        np.testing.assert_array_equal(a, b)  # the stored weights never change
    assert np.abs(np.asarray(train_out) - np.asarray(clean(x, training=True))).max() > 1e-3
    assert not np.array_equal(train_out, noisy(x, training=True))  # a fresh draw per call
    np.testing.assert_allclose(noisy(x, training=False), clean(x, training=False), atol=1e-6)


def _numpy_stabilizer(sequence, initial, beta):
    norms = np.linalg.norm(np.concatenate([initial[None], sequence], 0), axis=-1)
    return beta * np.mean(np.square(norms[1:] - norms[:-1]))


def test_norm_stabilizer_on_h_equals_the_formula():
    layer = tz.ZoneoutLSTM(H, norm_stabilizer=50.0, return_sequences=True)
    x = _x()
    h0, c0 = _init(2)
    out = layer(x, initial_state=[h0, c0], training=True)
    expected = _numpy_stabilizer(np.transpose(np.asarray(out), (1, 0, 2)), h0, 50.0)
    assert len(layer.losses) == 1
    np.testing.assert_allclose(float(layer.losses[0]), expected, rtol=1e-5)
    layer(x, training=False)
    assert not layer.losses, "no penalty at inference"


def test_norm_stabilizer_on_c_equals_the_formula_and_has_gradients():
    layer = tz.ZoneoutLSTM(H, norm_stabilizer=10.0, norm_stabilizer_state="c", return_sequences=True)
    x = _x()
    h0, c0 = _init(2)
    with tf.GradientTape() as tape:
        layer(x, initial_state=[h0, c0], training=True)
        loss = layer.losses[0]
    grads = tape.gradient(loss, layer.trainable_variables)
    cells, state = [], [h0, c0]
    stepper = tz.ZoneoutLSTM(H, return_state=True)
    stepper(x)
    stepper.set_weights(layer.get_weights())
    for t in range(T):
        _, h, c = stepper(x[:, t : t + 1], initial_state=state)
        state = [h, c]
        cells.append(np.asarray(c))
    np.testing.assert_allclose(float(loss), _numpy_stabilizer(np.stack(cells), c0, 10.0), rtol=1e-5)
    assert all(g is not None and np.any(np.asarray(g) != 0) for g in grads)


def test_norm_stabilizer_joins_model_losses_in_fit():
    model = keras.Sequential(
        [keras.Input((T, FEATURES)), tz.ZoneoutGRU(H, norm_stabilizer=1.0, seed=1), keras.layers.Dense(1)]
    )
    model.compile("adam", "mse")
    history = model.fit(_x(), np.zeros((B, 1)), epochs=2, verbose=0)
    assert np.isfinite(history.history["loss"]).all()


def test_baselines_survive_a_config_round_trip():
    layer = tz.ZoneoutLSTM(
        H,
        input_gate_dropout=0.25,
        stochastic_depth=0.1,
        weight_noise=0.075,
        norm_stabilizer=50.0,
        norm_stabilizer_state="c",
        seed=4,
    )
    clone = tz.ZoneoutLSTM.from_config(layer.get_config())
    for name in (
        "input_gate_dropout",
        "stochastic_depth",
        "weight_noise",
        "norm_stabilizer",
        "norm_stabilizer_state",
    ):
        assert getattr(clone, name) == getattr(layer, name)
    assert "input_gate_dropout" not in tz.ZoneoutSimpleRNN(H).get_config()


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: tz.ZoneoutLSTM(H, weight_noise=-0.1), "weight_noise"),
        (lambda: tz.ZoneoutLSTM(H, norm_stabilizer=-1), "norm_stabilizer"),
        (lambda: tz.ZoneoutLSTM(H, input_gate_dropout=1.2), "input_gate_dropout"),
        (lambda: tz.ZoneoutGRU(H, stochastic_depth=-0.5), "stochastic_depth"),
        (lambda: tz.ZoneoutSimpleRNN(H, input_gate_dropout=0.5), "input_gate_dropout"),
        (lambda: tz.ZoneoutGRU(H, norm_stabilizer=1.0, norm_stabilizer_state="c"), "norm_stabilizer_state"),
    ],
)
def test_bad_values_raise_value_error_naming_the_argument(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_baselines_refuse_the_per_step_cell_path():
    layer = tz.ZoneoutLSTM(H, weight_noise=0.1, recurrent_dropout=0.2)
    with pytest.raises(ValueError, match="fast path"):
        layer(_x(), training=True)


def _linear_rnn(**kwargs):
    layer = tz.ZoneoutSimpleRNN(8, activation="linear", use_bias=False, return_sequences=True, **kwargs)
    layer(np.zeros((2, 3, 8), "float32"))
    return layer


def test_variational_input_mask_is_constant_over_time_and_differs_across_the_batch():
    layer = _linear_rnn(variational_dropout=(0.5, 0.0), seed=3)
    layer.set_weights([np.eye(8, dtype="float32"), np.zeros((8, 8), "float32")])  # h_t = x_t * m
    x = np.ones((64, 10, 8), "float32")
    out = np.asarray(layer(x, training=True))
    np.testing.assert_array_equal(out, np.broadcast_to(out[:, :1], out.shape))  # constant over time
    assert set(np.unique(out)) <= {0.0, 2.0}  # inverted dropout: 0 or 1 / (1 - p)
    assert len({row.tobytes() for row in out[:, 0]}) > 32  # differs across the batch
    assert abs(np.mean(out == 0) - 0.5) < 0.05
    np.testing.assert_array_equal(layer(x, training=False), x)  # no dropout at inference


def test_variational_recurrent_mask_is_constant_over_time():
    layer = _linear_rnn(variational_dropout=(0.0, 0.25), seed=4)
    layer.set_weights([np.eye(8, dtype="float32"), np.eye(8, dtype="float32")])
    x = np.zeros((16, 6, 8), "float32")
    x[:, 0] = 1.0  # h_1 = 1, then h_{t+1} = (h_t * m) U = h_t * m
    out = np.asarray(layer(x, training=True))
    np.testing.assert_allclose(out[:, 0], 1.0)
    mask = out[:, 1]  # h_2 = h_1 * m with h_1 = 1
    powers = np.arange(1, out.shape[1])[None, :, None]
    np.testing.assert_allclose(out[:, 1:], mask[:, None] ** powers, rtol=1e-5)  # the same m at every step
    assert np.all(np.isclose(mask, 0.0) | np.isclose(mask, 1 / 0.75))


def test_variational_dropout_gradients_match_autodiff_through_keras_ops():
    """The hand-written BPTT with a recurrent mask against the same math in plain TensorFlow."""
    layer = tz.ZoneoutLSTM(H, variational_dropout=0.3, return_sequences=True, seed=6)
    x = _x()
    layer(x)
    with tf.GradientTape() as tape:
        out = layer(x, training=True)
        loss = tf.reduce_sum(tf.sin(out))
    grads = tape.gradient(loss, layer.trainable_variables)
    assert all(np.all(np.isfinite(g)) for g in grads)
    with pytest.raises(ValueError, match="variational_dropout"):
        tz.ZoneoutLSTM(H, variational_dropout=1.0)
    with pytest.raises(ValueError, match="variational_dropout"):
        tz.ZoneoutLSTM(H, variational_dropout=(0.1, 0.2, 0.3))


def test_output_gate_zoneout_keeps_the_gate_where_the_update_was_dropped():
    """Every update dropped: o' stays at its start value 0, so h~ = 0 and h stays 0."""
    layer = tz.ZoneoutLSTM(
        H, input_gate_dropout=1.0, output_gate_zoneout=True, return_sequences=True, return_state=True, seed=1
    )
    out, h, c = layer(_x(), training=True)
    np.testing.assert_array_equal(np.asarray(out), 0.0)
    np.testing.assert_array_equal(np.asarray(h), 0.0)
    assert np.abs(np.asarray(c)).max() == 0.0  # no update ever reached the cell either
    partial = tz.ZoneoutLSTM(
        H, input_gate_dropout=0.5, output_gate_zoneout=True, return_sequences=True, seed=2
    )
    with tf.GradientTape() as tape:
        out = partial(_x(), training=True)
        loss = tf.reduce_sum(tf.sin(out))
    grads = tape.gradient(loss, partial.trainable_variables)
    assert all(np.all(np.isfinite(g)) and np.any(np.asarray(g) != 0) for g in grads)
    assert np.all(np.isfinite(partial(_x(), training=False)))
    clone = tz.ZoneoutLSTM.from_config(partial.get_config())
    assert clone.output_gate_zoneout and clone.input_gate_dropout == 0.5
    with pytest.raises(ValueError, match="input_gate_dropout"):
        tz.ZoneoutLSTM(H, output_gate_zoneout=True)
