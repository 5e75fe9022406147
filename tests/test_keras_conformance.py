"""Keras conformance: one matrix of Keras arguments through keras.layers.X and tz.X.

For each (layer family, arguments) the two layers get the same weights and must agree on the
config (every Keras key, same value), the outputs and the gradients, alone and inside
keras.layers.Bidirectional. With zoneout at 0 our layers are Keras's layers.
"""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf
from conftest import FAMILIES

import tf_zoneout as tz

# Arguments every family accepts, with a value other than the default.
COMMON = [
    {},
    {"activation": "relu"},
    {"use_bias": False},
    {"return_sequences": True},
    {"return_state": True},
    {"return_sequences": True, "return_state": True, "go_backwards": True},
    {"kernel_initializer": "glorot_normal", "recurrent_initializer": "identity", "bias_initializer": "ones"},
    {"kernel_regularizer": "l2", "recurrent_regularizer": "l1", "bias_regularizer": "l2"},
    {"kernel_constraint": "non_neg", "recurrent_constraint": "max_norm", "bias_constraint": "unit_norm"},
    {"dropout": 0.3, "recurrent_dropout": 0.2, "seed": 5},  # compared at inference (no dropout)
    {"unroll": True, "return_sequences": True},
    {"zero_output_for_mask": True, "return_sequences": True},
    {"use_cudnn": False},
    {"use_cudnn": "auto", "return_sequences": True},
]
GATED = [  # LSTM and GRU
    {"recurrent_activation": "hard_sigmoid"},
    {"implementation": 1},
]
BY_FAMILY = {
    "lstm": [{"unit_forget_bias": False}],
    "gru": [{"reset_after": False}],
    "simple_rnn": [],
}


def cases():
    for name, ours, theirs, _states in FAMILIES:
        extra = GATED if name != "simple_rnn" else []
        for kwargs in COMMON + extra + BY_FAMILY[name]:
            if name == "simple_rnn" and "use_cudnn" in kwargs:
                continue  # keras.layers.SimpleRNN has no use_cudnn
            label = ",".join(f"{k}={v}" for k, v in kwargs.items()) or "defaults"
            yield pytest.param(ours, theirs, kwargs, id=f"{name}-{label}")


X = np.random.default_rng(0).normal(size=[3, 6, 4]).astype("float32")
MASK = np.array([[1] * 6, [1] * 4 + [0] * 2, [1] * 5 + [0]], bool)


def paired(ours_cls, theirs_cls, kwargs, wrap=None):
    """(ours, theirs), built on X, with Keras's (randomized) weights copied into ours."""
    ours, theirs = ours_cls(5, **kwargs), theirs_cls(5, **kwargs)
    if wrap is not None:
        ours, theirs = wrap(ours), wrap(theirs)
    ours(X), theirs(X)
    rng = np.random.default_rng(1)
    weights = [rng.normal(scale=0.3, size=w.shape).astype("float32") for w in theirs.get_weights()]
    theirs.set_weights(weights)
    ours.set_weights(weights)
    return ours, theirs


def outputs_and_gradients(layer, x, mask=None):
    x = tf.convert_to_tensor(x)
    with tf.GradientTape() as tape:
        tape.watch(x)
        out = layer(x, mask=mask, training=False)
        flat = tf.nest.flatten(out)
        loss = tf.add_n([tf.reduce_sum(o * (i + 1.0)) for i, o in enumerate(flat)])
    grads = tape.gradient(loss, [x, *layer.trainable_variables])
    return [np.asarray(o) for o in flat], [np.asarray(g) for g in grads]


@pytest.mark.parametrize(("ours_cls", "theirs_cls", "kwargs"), list(cases()))
def test_same_config_outputs_and_gradients_as_keras(ours_cls, theirs_cls, kwargs):
    ours, theirs = paired(ours_cls, theirs_cls, kwargs)
    ours_config, theirs_config = ours.get_config(), theirs.get_config()
    for key, value in theirs_config.items():
        if key != "name":
            assert ours_config[key] == value, key
    mask = MASK if kwargs.get("zero_output_for_mask") else None
    (ours_out, ours_grads), (theirs_out, theirs_grads) = (
        outputs_and_gradients(ours, X, mask),
        outputs_and_gradients(theirs, X, mask),
    )
    for a, b in zip(ours_out + ours_grads, theirs_out + theirs_grads):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)
    # A Keras config (what a saved Keras model holds) loads into our class and back.
    restored = ours_cls.from_config(theirs_config)
    assert restored.get_config()["units"] == 5


@pytest.mark.parametrize(("ours_cls", "theirs_cls", "kwargs"), list(cases())[::3])
def test_inside_bidirectional(ours_cls, theirs_cls, kwargs):
    kwargs = {k: v for k, v in kwargs.items() if k not in ("return_state", "go_backwards")}
    ours, theirs = paired(ours_cls, theirs_cls, kwargs, wrap=keras.layers.Bidirectional)
    (ours_out, ours_grads), (theirs_out, theirs_grads) = (
        outputs_and_gradients(ours, X),
        outputs_and_gradients(theirs, X),
    )
    for a, b in zip(ours_out + ours_grads, theirs_out + theirs_grads):
        np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-5)


@pytest.mark.parametrize(("name", "ours_cls", "theirs_cls", "states"), FAMILIES, ids=[f[0] for f in FAMILIES])
@pytest.mark.parametrize("activation", ["tanh", "relu", "linear"])
def test_integer_inputs_are_computed_in_float_as_keras_does(name, ours_cls, theirs_cls, states, activation):
    ints = np.random.default_rng(2).integers(-3, 4, size=[3, 6, 4]).astype("int32")
    ours, theirs = paired(ours_cls, theirs_cls, {"activation": activation})
    a, b = ours(ints), theirs(ints)
    assert a.dtype == b.dtype == tf.float32
    np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=2e-4, atol=2e-5)
    assert np.any(a.numpy() != 0)


def test_use_cudnn_true_is_refused_with_the_reason():
    with pytest.raises(ValueError, match="cuDNN's fused RNN cannot apply zoneout"):
        tz.ZoneoutLSTM(4, zoneout_cells=0.5, use_cudnn=True)
    with pytest.raises(ValueError, match="use_cudnn"):
        tz.ZoneoutGRU(4, use_cudnn="sometimes")


def test_unroll_with_zoneout_runs_the_unrolled_loop_and_trains():
    layer = tz.ZoneoutLSTM(5, zoneout_cells=0.5, zoneout_states=0.05, unroll=True, seed=1)
    assert not layer.uses_fast_path
    x = tf.constant(X)
    with tf.GradientTape() as tape:
        loss = tf.reduce_sum(layer(x, training=True))
    assert all(g is not None for g in tape.gradient(loss, layer.trainable_variables))
    with pytest.raises(ValueError, match="unroll=True"):
        tz.ZoneoutLSTM(5, unroll=True, static_mask=True)


def test_tf_keras_2_config_with_implementation_loads():
    config = keras.layers.LSTM(4).get_config()
    config["implementation"] = 2  # tf.keras 2 saved it
    layer = tz.ZoneoutLSTM.from_config(config)
    assert layer(X).shape == (3, 4)


@pytest.mark.parametrize(
    "cls", [tz.ZoneoutLSTM, tz.ZoneoutGRU, tz.ZoneoutSimpleRNN, tz.ZoneoutLSTMCell, tz.ZoneoutWrapper]
)
def test_every_public_class_has_its_own_docstring(cls):
    assert cls.__doc__ and "zoneout" in cls.__doc__.lower()
    assert cls.__doc__ not in {base.__doc__ for base in cls.__mro__[1:]}
