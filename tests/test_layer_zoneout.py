"""Zoneout behaviour of the sequence layers and cells: freezing, statistics, inference, seeds, variants."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import matched_pair

import tf_zoneout as tz

B, T, FEATURES, H = 32, 40, 5, 24


def _inputs(batch=B, steps=T, seed=0):
    return np.random.default_rng(seed).normal(size=(batch, steps, FEATURES)).astype("float32")


def _initial(n, batch=B):
    return [np.random.default_rng(10 + i).normal(size=(batch, H)).astype("float32") for i in range(n)]


def _six_sigma(rate, n):
    return 6 * np.sqrt(rate * (1 - rate) / n) + 2**-16


ZONEOUT_ONE = {
    "lstm": {"zoneout_cells": 1.0, "zoneout_states": 1.0},
    "gru": {"zoneout": 1.0},
    "simple_rnn": {"zoneout": 1.0},
}


def test_rate_one_freezes_the_state(family):
    name, cls, _, n_states = family
    layer = cls(H, return_sequences=True, return_state=True, seed=1, **ZONEOUT_ONE[name])
    init = _initial(n_states)
    outputs, *final = layer(_inputs(), initial_state=init, training=True)
    np.testing.assert_array_equal(np.asarray(outputs), np.broadcast_to(init[0][:, None], outputs.shape))
    for a, b in zip(final, init):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("rate", [0.05, 0.5])
def test_kept_fraction_of_h_matches_rate(family, rate):
    name, cls, _, _ = family
    kwargs = {"zoneout_states": rate} if name == "lstm" else {"zoneout": rate}
    layer = cls(H, return_sequences=True, seed=3, **kwargs)
    outputs = np.asarray(layer(_inputs(), training=True))
    kept = outputs[:, 1:] == outputs[:, :-1]
    assert abs(kept.mean() - rate) < _six_sigma(rate, kept.size)


def test_kept_fraction_of_lstm_cells_matches_rate():
    rate = 0.3
    layer = tz.ZoneoutLSTM(H, zoneout_cells=rate, return_state=True, seed=5)
    c0 = _initial(2, batch=4000)
    _, _, c1 = layer(_inputs(batch=4000, steps=1), initial_state=c0, training=True)
    kept = np.asarray(c1) == c0[1]
    assert abs(kept.mean() - rate) < _six_sigma(rate, kept.size)


def test_output_is_the_zoned_out_state_fed_to_the_next_step():
    """Running the sequence in two halves with the returned state gives the same result."""
    layer = tz.ZoneoutLSTM(H, zoneout_cells=0.5, zoneout_states=0.3, return_sequences=True, return_state=True)
    x = _inputs()
    full, h, c = layer(x, training=False)
    first, h1, c1 = layer(x[:, : T // 2], training=False)
    second, h2, c2 = layer(x[:, T // 2 :], initial_state=[h1, c1], training=False)
    np.testing.assert_allclose(np.concatenate([first, second], 1), full, atol=1e-5)
    np.testing.assert_allclose(np.asarray(full)[:, -1], h, atol=0)
    np.testing.assert_allclose(h2, h, atol=1e-5)
    np.testing.assert_allclose(c2, c, atol=1e-5)


def _numpy_lstm_expectation(x, kernel, recurrent_kernel, bias, zc, zh):
    sig = lambda v: 1 / (1 + np.exp(-v))  # noqa: E731
    h = np.zeros((x.shape[0], recurrent_kernel.shape[0]))
    c = np.zeros_like(h)
    outputs = []
    for t in range(x.shape[1]):
        i, f, g, o = np.split(x[:, t] @ kernel + h @ recurrent_kernel + bias, 4, -1)
        c_new = sig(f) * c + sig(i) * np.tanh(g)
        h_new = sig(o) * np.tanh(c_new)  # uses the un-zoned c~_t
        c = zc * c + (1 - zc) * c_new
        h = zh * h + (1 - zh) * h_new
        outputs.append(h)
    return np.stack(outputs, 1)


def test_inference_uses_the_expectation_numpy_reference():
    layer = tz.ZoneoutLSTM(H, zoneout_cells=0.5, zoneout_states=0.05, return_sequences=True)
    x = _inputs(batch=4, steps=12)
    out = layer(x, training=False)
    ref = _numpy_lstm_expectation(x, *layer.get_weights(), 0.5, 0.05)
    np.testing.assert_allclose(out, ref, atol=2e-5)


def test_deterministic_inference_is_the_plain_lstm():
    x = _inputs(batch=4, steps=12)
    ours, ref = matched_pair(
        lambda u, **kw: tz.ZoneoutLSTM(u, zoneout_cells=0.5, zoneout_inference="deterministic", **kw),
        keras.layers.LSTM,
        H,
        x.shape,
    )
    np.testing.assert_allclose(ours(x, training=False), ref(x), atol=2e-5)


def test_same_seed_same_outputs_whatever_ran_before(family):
    name, cls, _, _ = family
    kwargs = {"zoneout_cells": 0.5, "zoneout_states": 0.2} if name == "lstm" else {"zoneout": 0.3}
    x = _inputs(batch=8, steps=10)
    a = cls(H, seed=123, **kwargs)
    a(x)
    b = cls(H, seed=123, **kwargs)
    b(x)
    b.set_weights(a.get_weights())
    first = a(x, training=True)
    tf.random.set_seed(99)
    tf.random.uniform([100])
    keras.random.normal([3], seed=4)
    np.testing.assert_array_equal(first, b(x, training=True))
    # A later call draws fresh masks; another seed draws other masks.
    assert not np.array_equal(first, a(x, training=True))
    c = cls(H, seed=124, **kwargs)
    c(x)
    c.set_weights(a.get_weights())
    assert not np.array_equal(first, c(x, training=True))


def test_share_mask_zones_out_cells_and_states_together():
    layer = tz.ZoneoutLSTM(
        H, zoneout_cells=0.4, zoneout_states=0.4, share_mask=True, return_state=True, seed=2
    )
    init = _initial(2, batch=500)
    _, h, c = layer(_inputs(batch=500, steps=1), initial_state=init, training=True)
    h_kept = np.asarray(h) == init[0]
    c_kept = np.asarray(c) == init[1]
    np.testing.assert_array_equal(h_kept, c_kept)
    assert abs(h_kept.mean() - 0.4) < _six_sigma(0.4, h_kept.size)


def test_static_mask_is_fixed_over_time_and_differs_across_the_batch():
    layer = tz.ZoneoutGRU(H, zoneout=0.5, static_mask=True, return_sequences=True, seed=4)
    init = _initial(1)
    outputs = np.asarray(layer(_inputs(), initial_state=init, training=True))
    kept = outputs == init[0][:, None]  # a unit zoned out at every step keeps h0
    changed_at_first_step = outputs[:, 0] != init[0]
    np.testing.assert_array_equal(kept.all(1), ~changed_at_first_step)
    assert abs(kept.all(1).mean() - 0.5) < _six_sigma(0.5, B * H)
    assert not np.all(kept.all(1) == kept.all(1)[0])


@pytest.mark.parametrize(
    "cell",
    [
        lambda: tz.ZoneoutLSTMCell(H, zoneout_cells=1.0, zoneout_states=1.0, seed=1),
        lambda: tz.ZoneoutGRUCell(H, zoneout=1.0, seed=1),
        lambda: tz.ZoneoutSimpleRNNCell(H, zoneout=1.0, seed=1),
    ],
)
def test_cells_freeze_at_rate_one_inside_keras_rnn(cell):
    c = cell()
    layer = keras.layers.RNN(c, return_sequences=True)
    n_states = len(c.state_size) if isinstance(c.state_size, list | tuple) else 1
    init = _initial(n_states, batch=4)
    out = np.asarray(layer(_inputs(batch=4, steps=6), initial_state=init, training=True))
    np.testing.assert_array_equal(out, np.broadcast_to(init[0][:, None], out.shape))


def test_cell_kept_fraction_matches_rate():
    layer = keras.layers.RNN(tz.ZoneoutGRUCell(H, zoneout=0.3, seed=8), return_sequences=True)
    outputs = np.asarray(layer(_inputs(), training=True))
    kept = outputs[:, 1:] == outputs[:, :-1]
    assert abs(kept.mean() - 0.3) < _six_sigma(0.3, kept.size)


def test_training_flag_as_tensor_in_a_graph():
    layer = tz.ZoneoutLSTM(H, zoneout_cells=0.5, zoneout_states=0.5, seed=1)
    x = _inputs(batch=4, steps=5)
    fn = tf.function(lambda flag: layer(x, training=flag))
    np.testing.assert_allclose(fn(tf.constant(False)), layer(x, training=False), atol=1e-6)
    assert not np.allclose(fn(tf.constant(True)), layer(x, training=False))


@pytest.mark.parametrize("jit_compile", [True, False], ids=["xla", "graph"])
def test_eager_calls_reuse_the_compiled_loop(family, jit_compile):
    """Each call builds a new (equal) step object; the loop must not be traced (and, with XLA,
    compiled) again for it: that made every eager call of a small layer take about a second."""
    from tf_zoneout.kernels import scan

    name, cls, _, _ = family
    rate = {"zoneout_states": 0.2} if name == "lstm" else {"zoneout": 0.2}
    layer = cls(8, **rate, return_sequences=True, jit_compile=jit_compile)
    x = tf.random.normal([2, 3, 5])
    fwd, bwd = scan._compiled(jit_compile)
    for training in (False, True, False, True):
        with tf.GradientTape() as tape:
            y = layer(x, training=training)
        tape.gradient(y, layer.trainable_variables)
        if training:
            traced = (fwd.experimental_get_tracing_count(), bwd.experimental_get_tracing_count())
    for training in (False, True, True):
        with tf.GradientTape() as tape:
            y = layer(x, training=training)
        tape.gradient(y, layer.trainable_variables)
    assert (fwd.experimental_get_tracing_count(), bwd.experimental_get_tracing_count()) == traced
