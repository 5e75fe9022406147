"""ZoneoutWrapper: zoneout for any Keras RNN cell."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras.src.layers.rnn.conv_lstm import ConvLSTMCell

import tf_zoneout as tz

X = np.random.default_rng(0).normal(size=[4, 7, 5]).astype("float32")


def copy_weights(source, target, x):
    source(x)
    target(x)
    target.set_weights(source.get_weights())


@pytest.mark.parametrize("training", [True, False])
def test_wrapped_lstm_cell_equals_zoneout_lstm_cell(training):
    ours = keras.layers.RNN(
        tz.ZoneoutWrapper(keras.layers.LSTMCell(6), zoneout=[0.05, 0.5], seed=3), return_sequences=True
    )
    reference = keras.layers.RNN(
        tz.ZoneoutLSTMCell(6, zoneout_cells=0.5, zoneout_states=0.05, seed=3), return_sequences=True
    )
    copy_weights(reference, ours, X)
    x = tf.constant(X)
    with tf.GradientTape(persistent=True) as tape:
        tape.watch(x)
        a, b = ours(x, training=training), reference(x, training=training)
    np.testing.assert_allclose(a.numpy(), b.numpy(), atol=1e-6)
    for ga, gb in zip(
        tape.gradient(a, [x, *ours.trainable_variables]),
        tape.gradient(b, [x, *reference.trainable_variables]),
    ):
        np.testing.assert_allclose(np.asarray(ga), np.asarray(gb), atol=1e-5)


def test_wrapped_gru_cell_keeps_units_at_the_rate_and_freezes_at_one():
    cell = tz.ZoneoutWrapper(keras.layers.GRUCell(64), zoneout=0.3, seed=1)
    x = tf.constant(np.random.default_rng(1).normal(size=[32, 1, 5]).astype("float32"))
    h0 = tf.constant(np.random.default_rng(2).normal(size=[32, 64]).astype("float32"))
    out = keras.layers.RNN(cell)(x, initial_state=[h0], training=True)
    kept = np.mean(np.isclose(out.numpy(), h0.numpy()))
    n = 32 * 64
    assert abs(kept - 0.3) < 6 * np.sqrt(0.3 * 0.7 / n)
    frozen = keras.layers.RNN(tz.ZoneoutWrapper(keras.layers.GRUCell(64), zoneout=1.0))
    np.testing.assert_array_equal(frozen(x, initial_state=[h0], training=True).numpy(), h0.numpy())
    # Inference: the expectation.
    plain = keras.layers.RNN(keras.layers.GRUCell(64))
    wrapped = keras.layers.RNN(tz.ZoneoutWrapper(keras.layers.GRUCell(64), zoneout=0.3))
    copy_weights(plain, wrapped, x)
    expected = 0.3 * h0.numpy() + 0.7 * plain(x, initial_state=[h0]).numpy()
    np.testing.assert_allclose(wrapped(x, initial_state=[h0], training=False).numpy(), expected, atol=1e-5)


def test_conv_lstm_cell_is_zoned_out_per_pixel_and_channel():
    cell = tz.ZoneoutWrapper(
        ConvLSTMCell(rank=2, filters=4, kernel_size=3, padding="same"), zoneout=0.5, seed=2
    )
    frames = tf.constant(np.random.default_rng(3).normal(size=[2, 3, 6, 6, 3]).astype("float32"))
    states = [tf.zeros([2, 6, 6, 4]), tf.zeros([2, 6, 6, 4])]
    for t in range(3):
        output, new_states = cell(frames[:, t], states, training=True)
        assert output.shape == (2, 6, 6, 4) and output is new_states[0]
        if t > 0:  # some units kept their value, some changed
            same = np.isclose(new_states[1].numpy(), states[1].numpy())
            assert 0.3 < same.mean() < 0.7
        states = new_states


@keras.saving.register_keras_serializable(package="tests")
class CounterCell(keras.layers.Layer):
    """A custom cell: h_t = h_{t-1} + x_t W (state and output both h)."""

    def __init__(self, units, **kwargs):
        super().__init__(**kwargs)
        self.units, self.state_size, self.output_size = units, units, units

    def build(self, input_shape):
        self.w = self.add_weight(shape=(input_shape[-1], self.units), initializer="ones")

    def call(self, inputs, states):
        h = states[0] + inputs @ self.w
        return h, [h]

    def get_config(self):
        return {**super().get_config(), "units": self.units}


def test_custom_cell_and_stacked_cells_in_bidirectional_and_serialization(tmp_path):
    stacked = keras.layers.StackedRNNCells(
        [
            tz.ZoneoutWrapper(CounterCell(3), zoneout=0.5, seed=1),
            tz.ZoneoutWrapper(keras.layers.LSTMCell(4), 0.2),
        ]
    )
    inputs = keras.Input([7, 5])
    outputs = keras.layers.Bidirectional(keras.layers.RNN(stacked, return_sequences=True))(inputs)
    model = keras.Model(inputs, outputs)
    assert model(X, training=True).shape == (4, 7, 8)
    # Inference is deterministic; a saved and reloaded model gives the same outputs.
    path = tmp_path / "model.keras"
    layer = keras.layers.RNN(tz.ZoneoutWrapper(keras.layers.LSTMCell(4), zoneout=[0.1, 0.5], seed=4))
    plain = keras.Sequential([keras.Input([7, 5]), layer])
    plain.save(path)
    loaded = keras.saving.load_model(path)
    np.testing.assert_allclose(loaded(X).numpy(), plain(X).numpy(), atol=1e-6)
    restored = loaded.layers[0].cell
    assert isinstance(restored, tz.ZoneoutWrapper) and restored.rates_for(2) == (0.1, 0.5)


def test_bad_wrapper_arguments_are_explained():
    with pytest.raises(ValueError, match="one rate per state"):
        tz.ZoneoutWrapper(keras.layers.LSTMCell(4), zoneout=[0.1, 0.2, 0.3])
    with pytest.raises(ValueError, match="probability"):
        tz.ZoneoutWrapper(keras.layers.GRUCell(4), zoneout=1.5)
    with pytest.raises(ValueError, match="RNN cell"):
        tz.ZoneoutWrapper(keras.layers.Dense(4), zoneout=0.1)
