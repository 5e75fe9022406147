"""With zoneout off, our layers and cells compute exactly Keras's LSTM, GRU and SimpleRNN."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import assert_close, loss_and_grads, matched_pair

import tf_zoneout as tz

B, T, FEATURES, H = 3, 7, 4, 5


@pytest.fixture
def inputs():
    return np.random.default_rng(0).normal(size=(B, T, FEATURES)).astype("float32")


@pytest.mark.parametrize("training", [True, False])
def test_outputs_and_gradients_match_keras(family, inputs, training):
    _, ours_cls, keras_cls, n_states = family
    ours, ref = matched_pair(ours_cls, keras_cls, H, inputs.shape, return_sequences=True, return_state=True)
    assert ours.uses_fast_path
    init = [np.random.default_rng(1 + i).normal(size=(B, H)).astype("float32") for i in range(n_states)]
    out_a, grads_a = loss_and_grads(ours, inputs, training, initial_state=init)
    out_b, grads_b = loss_and_grads(ref, inputs, training, initial_state=init)
    assert_close(out_a, out_b)
    assert_close(grads_a, grads_b, atol=5e-5, rtol=5e-5)


def test_padding_mask_matches_keras(family, inputs):
    _, ours_cls, keras_cls, _ = family
    # On a GPU Keras's LSTM and GRU take cuDNN, which writes zeros at padded steps where their CPU
    # path and ours repeat the last output: compare under that convention there (`make gpu-check`).
    cudnn = {"zero_output_for_mask": True} if tf.config.list_logical_devices("GPU") else {}
    ours, ref = matched_pair(
        ours_cls, keras_cls, H, inputs.shape, return_sequences=True, return_state=True, **cudnn
    )
    lengths = np.array([T, 4, 1])
    mask = np.arange(T)[None, :] < lengths[:, None]
    out_a, grads_a = loss_and_grads(ours, inputs, True, mask=tf.constant(mask))
    out_b, grads_b = loss_and_grads(ref, inputs, True, mask=tf.constant(mask))
    assert_close(out_a, out_b)
    assert_close(grads_a, grads_b, atol=5e-5, rtol=5e-5)
    # A padded step leaves the state unchanged: the final state is the state at the last real step.
    full, *_ = ours(inputs, mask=tf.constant(mask))
    np.testing.assert_allclose(out_a[1][1], np.asarray(full)[1, lengths[1] - 1], atol=1e-6)
    if cudnn:
        assert not np.asarray(full)[2, 1:].any()


OPTIONS = [{"go_backwards": True}, {"use_bias": False}, {"return_sequences": False}]


@pytest.mark.parametrize("options", OPTIONS)
def test_keras_options_match(family, inputs, options):
    _, ours_cls, keras_cls, _ = family
    ours, ref = matched_pair(ours_cls, keras_cls, H, inputs.shape, **options)
    out_a, grads_a = loss_and_grads(ours, inputs, True)
    out_b, grads_b = loss_and_grads(ref, inputs, True)
    assert_close(out_a, out_b)
    assert_close(grads_a, grads_b, atol=5e-5, rtol=5e-5)


def test_stateful_matches_keras(family, inputs):
    _, ours_cls, keras_cls, _ = family
    ours, ref = matched_pair(ours_cls, keras_cls, H, inputs.shape, stateful=True, return_sequences=True)
    ours.reset_state()
    ref.reset_state()
    for chunk in (inputs, inputs[:, ::-1].copy(), inputs * 0.5):
        out_a, grads_a = loss_and_grads(ours, chunk, True)
        out_b, grads_b = loss_and_grads(ref, chunk, True)
        assert_close(out_a, out_b)
        assert_close(grads_a, grads_b, atol=5e-5, rtol=5e-5)
    ours.reset_state()
    ref.reset_state()
    assert_close([ours(inputs)], [ref(inputs)])


def test_weights_transfer_both_ways(family, inputs):
    _, ours_cls, keras_cls, _ = family
    ours, ref = matched_pair(ours_cls, keras_cls, H, inputs.shape)
    assert [w.shape for w in ours.get_weights()] == [w.shape for w in ref.get_weights()]
    assert [v.name for v in ours.weights] == [v.name for v in ref.weights]
    fresh_ref = keras_cls(H)
    fresh_ref(inputs)
    fresh_ref.set_weights(ours.get_weights())
    assert_close([fresh_ref(inputs)], [ours(inputs)])


@pytest.mark.parametrize(
    "cell_cls, keras_cell_cls",
    [
        (tz.ZoneoutLSTMCell, keras.layers.LSTMCell),
        (tz.ZoneoutGRUCell, keras.layers.GRUCell),
        (tz.ZoneoutSimpleRNNCell, keras.layers.SimpleRNNCell),
    ],
)
def test_cells_inside_keras_rnn_match_keras(cell_cls, keras_cell_cls, inputs):
    ours, ref = matched_pair(
        lambda units, **kw: keras.layers.RNN(cell_cls(units), **kw),
        lambda units, **kw: keras.layers.RNN(keras_cell_cls(units), **kw),
        H,
        inputs.shape,
        return_sequences=True,
    )
    out_a, grads_a = loss_and_grads(ours, inputs, True)
    out_b, grads_b = loss_and_grads(ref, inputs, True)
    assert_close(out_a, out_b)
    assert_close(grads_a, grads_b, atol=5e-5, rtol=5e-5)


def test_configurations_needing_the_cell_path_still_match(inputs):
    """GRU reset_after=False and recurrent_dropout run on Keras's loop, with our cell."""
    ours, ref = matched_pair(tz.ZoneoutGRU, keras.layers.GRU, H, inputs.shape, reset_after=False)
    assert not ours.uses_fast_path
    assert_close([ours(inputs)], [ref(inputs)])


def test_inside_compiled_function_and_xla(inputs):
    ours, ref = matched_pair(tz.ZoneoutLSTM, keras.layers.LSTM, H, inputs.shape)
    graph = tf.function(lambda x: ours(x, training=True))
    xla = tf.function(lambda x: ours(x, training=True), jit_compile=True)
    expected = ref(inputs)
    assert_close([graph(inputs)], [expected])
    assert_close([xla(inputs)], [expected])
