"""The zoneout operation: semantics, mask statistics and seeding."""

from __future__ import annotations

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_zoneout as tz
from tf_zoneout.zoneout import keep_mask, keep_mask_pair

SHAPE = (400, 500)  # 200,000 elements: the std of a kept fraction is <= 0.0011


def _tensors():
    rng = np.random.default_rng(0)
    return rng.normal(size=SHAPE).astype("float32"), rng.normal(size=SHAPE).astype("float32")


def _six_sigma(rate, n):
    return 6 * np.sqrt(rate * (1 - rate) / n) + 2**-16


def test_rate_zero_is_identity_and_rate_one_keeps_previous():
    new, prev = _tensors()
    np.testing.assert_array_equal(tz.zoneout(new, prev, 0.0, training=True, seed=1), new)
    np.testing.assert_array_equal(tz.zoneout(new, prev, 1.0, training=True, seed=1), prev)


def test_inference_expectation_and_deterministic():
    new, prev = _tensors()
    out = tz.zoneout(new, prev, 0.3, training=False)
    np.testing.assert_allclose(out, 0.3 * prev + 0.7 * new, atol=1e-6)
    det = tz.zoneout(new, prev, 0.3, training=False, inference="deterministic")
    np.testing.assert_array_equal(det, new)


@pytest.mark.parametrize("rate", [0.05, 0.5, 0.93])
def test_training_keeps_each_element_with_probability_rate(rate):
    new, prev = _tensors()
    out = np.asarray(tz.zoneout(new, prev, rate, training=True, seed=5))
    kept = out == prev
    updated = out == new
    assert np.all(kept | updated), "every element is either kept or updated, never mixed"
    assert abs(kept.mean() - rate) < _six_sigma(rate, kept.size)


def test_mask_pair_is_independent_and_shared_mode_nests():
    zc, zh = 0.5, 0.05
    mc, mh = (np.asarray(m) for m in keep_mask_pair(SHAPE, (zc, zh), seed=3))
    n = mc.size
    assert abs(mc.mean() - zc) < _six_sigma(zc, n)
    assert abs(mh.mean() - zh) < _six_sigma(zh, n)
    both = (mc * mh).mean()
    assert abs(both - zc * zh) < _six_sigma(zc * zh, n), "independent masks"
    sc, sh = (np.asarray(m) for m in keep_mask_pair(SHAPE, (0.3, 0.3), seed=3, shared=True))
    np.testing.assert_array_equal(sc, sh)


def test_masks_are_fresh_across_time_steps_and_units():
    """Neighbouring elements are uncorrelated (no striping from the 16-bit split)."""
    m = np.asarray(keep_mask((50, 64, 64), 0.5, seed=11))
    for axis in range(3):
        a = np.moveaxis(m, axis, 0)
        corr = np.corrcoef(a[1:].ravel(), a[:-1].ravel())[0, 1]
        assert abs(corr) < 0.02


def test_masks_of_successive_seeds_are_uncorrelated():
    """Keras seed generators step their state by one: such seeds must give unrelated masks."""
    gen = keras.random.SeedGenerator(5)
    a, b = (np.asarray(keep_mask((64, 256), 0.5, gen)) for _ in range(2))
    c = np.asarray(keep_mask((64, 256), 0.5, [0, 1]))
    d = np.asarray(keep_mask((64, 256), 0.5, [0, 2]))
    for x, y in ((a, b), (c, d)):
        assert abs(np.corrcoef(x.ravel(), y.ravel())[0, 1]) < 0.03
        assert abs(np.corrcoef(x[:, 1:].ravel(), y[:, :-1].ravel())[0, 1]) < 0.03  # not shifted copies


def test_same_seed_same_result_whatever_ran_before():
    new, prev = _tensors()
    first = tz.zoneout(new, prev, 0.4, training=True, seed=42)
    tf.random.set_seed(123)
    tf.random.uniform([10])
    again = tz.zoneout(new, prev, 0.4, training=True, seed=42)
    other = tz.zoneout(new, prev, 0.4, training=True, seed=43)
    np.testing.assert_array_equal(first, again)
    assert np.mean(np.asarray(first) != np.asarray(other)) > 0.2


def test_each_replica_draws_its_own_masks_from_the_same_seed(monkeypatch):
    from tf_zoneout import masks

    drawn = {}
    for replica in (None, 0, 1):
        monkeypatch.setattr(masks, "_replica_index", lambda replica=replica: replica)
        drawn[replica] = np.asarray(keep_mask((64, 256), 0.5, 7))
        np.testing.assert_array_equal(drawn[replica], keep_mask((64, 256), 0.5, 7))  # still a pure function
    assert abs(np.corrcoef(drawn[0].ravel(), drawn[1].ravel())[0, 1]) < 0.03
    assert abs(np.corrcoef(drawn[None].ravel(), drawn[1].ravel())[0, 1]) < 0.03


def test_training_flag_may_be_a_tensor():
    new, prev = _tensors()
    fn = tf.function(lambda flag: tz.zoneout(new, prev, 0.5, training=flag, seed=1))
    np.testing.assert_allclose(fn(tf.constant(False)), 0.5 * prev + 0.5 * new, atol=1e-6)
    np.testing.assert_array_equal(fn(tf.constant(True)), tz.zoneout(new, prev, 0.5, training=True, seed=1))


@pytest.mark.parametrize("rate", [-0.1, 1.5, float("nan"), "0.5", None])
def test_bad_rate_raises_value_error_naming_it(rate):
    with pytest.raises(ValueError, match="rate"):
        tz.zoneout(tf.zeros([2]), tf.zeros([2]), rate, training=True)


def test_bad_inference_mode_and_shape_mismatch():
    with pytest.raises(ValueError, match="zoneout_inference"):
        tz.zoneout(tf.zeros([2]), tf.zeros([2]), 0.5, training=False, inference="mean")
    with pytest.raises(ValueError, match="shape"):
        tz.zoneout(tf.zeros([2, 3]), tf.zeros([3, 2]), 0.5, training=True)
