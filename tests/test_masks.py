"""Masks are integer functions of (seed, position): the counters stay distinct past 2**31 and 2**32
elements (checked at such indices against a NumPy reference of the hash, without allocating the
tensors), and the same seed gives the same masks with and without XLA around the layer, including
``model.fit(jit_compile=True)``."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_zoneout as tz
from tf_zoneout import masks

M32 = 0xFFFFFFFF


def numpy_mix32(x: np.ndarray) -> np.ndarray:
    x = x.astype(np.uint64) & M32
    x ^= x >> 16
    x = (x * 0x7FEB352D) & M32
    x ^= x >> 15
    x = (x * 0x846CA68B) & M32
    return x ^ (x >> 16)


def numpy_bits(index: np.ndarray, key) -> np.ndarray:
    """The reference: the 64-bit element index, split into words, hashed with ``key``."""
    index = np.asarray(index, np.uint64)
    low, high = index & M32, index >> 32
    mixed = (low * int(key[0]) + int(key[1])) & M32
    return numpy_mix32((mixed + high * 0x9E3779B9) & M32)


def test_counter_words_carry_into_the_high_word():
    low, high = masks.counter_words(tf.constant(2**32 - 2, tf.int64), tf.constant([0, 1, 2, 3], tf.uint32))
    assert low.numpy().tolist() == [2**32 - 2, 2**32 - 1, 0, 1] and high.numpy().tolist() == [0, 0, 1, 1]
    low, high = masks.counter_words(
        tf.constant([[5 * 2**32 + 7]], tf.int64), tf.constant([0, 2**32 - 1], tf.uint32)
    )
    assert low.numpy().tolist() == [[7, 6]] and high.numpy().tolist() == [[5, 6]]


@pytest.mark.parametrize("step", [0, 3, 2**31 // 24 + 1, 2**32 // 24, 2**32 // 24 + 1, 5 * 2**32 // 24])
def test_a_steps_mask_is_the_hash_of_its_64_bit_element_indices(step):
    """Step ``step`` of a [T, 4, 6] per-step mask: elements step*24 ... step*24 + 23, past 2**31 and
    2**32 for the large steps; each must hash its own 64-bit index (no wrap, no int32 overflow)."""
    (mask,) = masks.hashed_masks([0.5], 7, per_step=True)
    factor = masks.mask_at_step(mask, tf.constant(step, tf.int64), tf.constant([4, 6]))
    index = step * 24 + np.arange(24, dtype=np.uint64)
    bits = numpy_bits(index, mask.key.numpy())
    expected = ((bits >> 16) < mask.threshold).astype(np.float32).reshape([4, 6])
    np.testing.assert_array_equal(factor.numpy(), expected)


def test_indices_2_to_the_32_apart_get_other_bits():
    key = masks.hashed_masks([0.5], 3, per_step=True)[0].key
    low = tf.constant(np.arange(1000), tf.uint32)
    first = masks.random_bits(low, key).numpy()
    wrapped = masks.random_bits(low, key, tf.ones_like(low)).numpy()
    assert np.mean(first == wrapped) < 0.01  # the uint32-only counter repeated exactly here
    np.testing.assert_array_equal(first, masks.random_bits(low, key, tf.zeros_like(low)).numpy())


def test_whole_sequence_masks_equal_the_per_step_ones():
    (mask,) = masks.hashed_masks([0.3], 11, per_step=True)
    whole = masks.materialize_factor(mask, tf.constant([3, 5]), 4).numpy()
    for t in range(4):
        np.testing.assert_array_equal(whole[t], masks.mask_at_step(mask, t, tf.constant([3, 5])).numpy())


def _layers():
    return {
        "lstm": tz.ZoneoutLSTM(8, zoneout_cells=0.5, zoneout_states=0.3, return_sequences=True, seed=5),
        "gru": tz.ZoneoutGRU(8, zoneout=0.4, return_sequences=True, seed=5),
        "batch_norm_lstm": tz.RecurrentBatchNormLSTM(8, zoneout_cells=0.5, zoneout_states=0.3, seed=5),
        # Weight noise is TensorFlow's stateless_normal keyed by the same hash: held here too.
        "weight_noise": tz.ZoneoutLSTM(
            8, weight_noise=0.3, input_gate_dropout=0.3, return_sequences=True, seed=5
        ),
    }


@pytest.mark.parametrize("name", ["lstm", "gru", "batch_norm_lstm", "weight_noise"])
def test_the_same_seed_gives_the_same_masks_with_and_without_an_enclosing_xla_function(name):
    x = tf.constant(np.random.default_rng(0).normal(size=[3, 6, 4]).astype("float32"))
    outputs = {}
    for jit in (False, True):
        layer = _layers()[name]
        layer(x)  # build; the weights come from the seeded initializers
        layer.set_weights([np.full(w.shape, 0.1, "float32") for w in layer.get_weights()])

        @tf.function(jit_compile=jit)
        def call(x, layer=layer):
            return layer(x, training=True), layer(x, training=True)  # two draws: the generator advances

        outputs[jit] = [o.numpy() for o in call(x)]
    for plain, compiled in zip(outputs[False], outputs[True], strict=True):
        # XLA may round differently (1e-7); another mask would move outputs by about 0.1.
        np.testing.assert_allclose(compiled, plain, atol=1e-5)
    assert not np.allclose(outputs[False][0], outputs[False][1])


def test_model_fit_with_jit_compile_trains_with_the_same_masks():
    x = np.random.default_rng(1).normal(size=[16, 10, 3]).astype("float32")
    y = np.random.default_rng(2).normal(size=[16, 1]).astype("float32")
    weights = {}
    for jit in (False, True):
        keras.utils.set_random_seed(4)
        model = keras.Sequential(
            [
                keras.Input([10, 3]),
                tz.ZoneoutLSTM(8, zoneout_cells=0.5, zoneout_states=0.5, seed=3),
                keras.layers.Dense(1),
            ]
        )
        model.set_weights([np.full(w.shape, 0.05, "float32") for w in model.get_weights()])
        model.compile(keras.optimizers.SGD(0.5), "mse", jit_compile=jit)
        model.fit(x, y, batch_size=4, epochs=2, shuffle=False, verbose=0)
        weights[jit] = model.get_weights()
    for plain, compiled in zip(weights[False], weights[True], strict=True):
        np.testing.assert_allclose(compiled, plain, atol=1e-4)


def test_hashed_normal_noise_is_standard_normal_and_seeded():
    noise = masks.normal_noise([200, 500], 9).numpy().ravel()
    assert abs(noise.mean()) < 0.01 and abs(noise.std() - 1.0) < 0.01
    # Quantiles of N(0, 1) at 2.5%, 16%, 50%, 84%, 97.5%.
    np.testing.assert_allclose(
        np.quantile(noise, [0.025, 0.16, 0.5, 0.84, 0.975]), [-1.96, -0.994, 0, 0.994, 1.96], atol=0.02
    )
    np.testing.assert_array_equal(masks.normal_noise([200, 500], 9).numpy().ravel(), noise)
    assert np.corrcoef(noise, masks.normal_noise([200, 500], 10).numpy().ravel())[0, 1] < 0.01
