"""Round trips (config, .keras, SavedModel), mixed precision, model.fit, and argument errors."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_zoneout as tz

B, T, FEATURES, H = 4, 9, 3, 6

LAYERS = [
    lambda **kw: tz.ZoneoutLSTM(H, zoneout_cells=0.5, zoneout_states=0.05, seed=5, **kw),
    lambda **kw: tz.ZoneoutGRU(H, zoneout=0.2, static_mask=True, seed=5, **kw),
    lambda **kw: tz.ZoneoutSimpleRNN(H, zoneout=0.2, zoneout_inference="deterministic", seed=5, **kw),
]
IDS = ["lstm", "gru", "simple_rnn"]


def _x():
    return np.random.default_rng(0).normal(size=(B, T, FEATURES)).astype("float32")


def _model(make_layer, **kw):
    return keras.Sequential([keras.Input((T, FEATURES)), make_layer(**kw), keras.layers.Dense(2)])


@pytest.mark.parametrize("make_layer", LAYERS, ids=IDS)
def test_config_round_trip(make_layer):
    layer = make_layer(return_sequences=True)
    config = layer.get_config()
    clone = type(layer).from_config(config)
    assert clone.get_config() == config
    x = _x()
    layer(x)
    clone(x)
    clone.set_weights(layer.get_weights())
    np.testing.assert_allclose(clone(x), layer(x), atol=1e-6)
    # Same seed in the config: a fresh copy draws the same training masks.
    fresh = type(layer).from_config(config)
    fresh(x)
    fresh.set_weights(layer.get_weights())
    twin = type(layer).from_config(config)
    twin(x)
    twin.set_weights(layer.get_weights())
    np.testing.assert_array_equal(fresh(x, training=True), twin(x, training=True))


@pytest.mark.parametrize("make_layer", LAYERS, ids=IDS)
def test_keras_file_round_trip(make_layer, tmp_path):
    model = _model(make_layer)
    x = _x()
    expected = model.predict(x, verbose=0)
    model.save(tmp_path / "model.keras")
    loaded = keras.models.load_model(tmp_path / "model.keras")
    np.testing.assert_allclose(loaded.predict(x, verbose=0), expected, atol=1e-6)
    assert type(loaded.layers[0]) is type(model.layers[0])


@pytest.mark.parametrize("jit_compile", [True, False])
@pytest.mark.parametrize("make_layer", LAYERS, ids=IDS)
def test_saved_model_round_trip(make_layer, jit_compile, tmp_path):
    layer = make_layer(return_sequences=True, jit_compile=jit_compile)
    x = _x()
    expected = layer(x)
    module = tf.Module()
    module.layer = layer
    module.serve = tf.function(
        lambda inputs: layer(inputs, training=False),
        input_signature=[tf.TensorSpec([None, None, FEATURES], tf.float32)],
    )
    tf.saved_model.save(module, str(tmp_path / "sm"))
    loaded = tf.saved_model.load(str(tmp_path / "sm"))
    np.testing.assert_allclose(loaded.serve(x), expected, atol=1e-6)
    # Other batch and sequence lengths go through the same signature.
    np.testing.assert_allclose(loaded.serve(x[:2, :5]), layer(x[:2, :5]), atol=1e-6)


def test_keras_export_round_trip(tmp_path):
    model = _model(LAYERS[0])
    x = _x()
    model.export(str(tmp_path / "exported"), verbose=False)
    reloaded = tf.saved_model.load(str(tmp_path / "exported"))
    np.testing.assert_allclose(reloaded.serve(x), model.predict(x, verbose=0), atol=1e-6)


@pytest.mark.parametrize("policy", ["mixed_float16", "mixed_bfloat16"])
@pytest.mark.parametrize("make_layer", LAYERS, ids=IDS)
def test_mixed_precision_runs_and_tracks_float32(make_layer, policy):
    x = _x()
    reference = make_layer(return_sequences=True)
    reference(x)
    keras.mixed_precision.set_global_policy(policy)
    try:
        layer = make_layer(return_sequences=True)
        layer(x)
        layer.set_weights(reference.get_weights())
        with tf.GradientTape() as tape:
            out = layer(x, training=True)
            loss = tf.reduce_sum(tf.cast(out, tf.float32))
        grads = tape.gradient(loss, layer.trainable_variables)
        low = layer(x, training=False)
    finally:
        keras.mixed_precision.set_global_policy("float32")
    assert out.dtype == keras.mixed_precision.Policy(policy).compute_dtype
    assert all(g.dtype == tf.float32 and np.all(np.isfinite(g)) for g in grads)
    tolerance = 0.05 if policy == "mixed_bfloat16" else 0.01
    np.testing.assert_allclose(np.asarray(tf.cast(low, tf.float32)), reference(x), atol=tolerance)


@pytest.mark.parametrize("jit_compile", ["auto", True, False])
def test_model_fit_trains(jit_compile):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 8, size=(64, 12))
    y = np.roll(x, 1, axis=1)  # predict the previous symbol: needs memory
    model = keras.Sequential(
        [
            keras.Input((12,), dtype="int32"),
            keras.layers.Embedding(8, 8),
            tz.ZoneoutLSTM(32, zoneout_cells=0.2, zoneout_states=0.05, return_sequences=True, seed=1),
            keras.layers.Dense(8),
        ]
    )
    model.compile(
        keras.optimizers.Adam(0.02),
        keras.losses.SparseCategoricalCrossentropy(from_logits=True),
        jit_compile=jit_compile,
    )
    history = model.fit(x, y, epochs=8, batch_size=16, verbose=0)
    losses = history.history["loss"]
    assert losses[-1] < 0.7 * losses[0]


@pytest.mark.parametrize(
    "build, match",
    [
        (lambda: tz.ZoneoutLSTM(4, zoneout_cells=1.5), "zoneout_cells"),
        (lambda: tz.ZoneoutLSTM(4, zoneout_states=-0.1), "zoneout_states"),
        (lambda: tz.ZoneoutGRU(4, zoneout=2), "zoneout"),
        (lambda: tz.ZoneoutSimpleRNN(4, zoneout=float("nan")), "zoneout"),
        (lambda: tz.ZoneoutLSTM(0), "units"),
        (lambda: tz.ZoneoutGRU(-3), "units"),
        (lambda: tz.ZoneoutSimpleRNNCell(2.5), "units"),
        (lambda: tz.ZoneoutLSTMCell(4, zoneout_inference="average"), "zoneout_inference"),
    ],
)
def test_bad_arguments_raise_value_error_naming_them(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_bad_sequence_mask_raises_value_error():
    layer = tz.ZoneoutLSTM(H)
    x = _x()
    with pytest.raises(ValueError, match="mask"):
        layer(x, mask=np.ones((B, T + 1), bool))
    with pytest.raises(ValueError, match="mask"):
        layer(x, mask=np.ones((B + 1, T), bool))
