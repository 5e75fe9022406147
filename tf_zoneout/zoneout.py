"""The zoneout operation and the masks it draws (Krueger et al., ICLR 2017)."""

from __future__ import annotations

import numbers

import keras
import tensorflow as tf

INFERENCE_MODES = ("expectation", "deterministic")

# Masks are drawn as 16-bit uniforms: one 32-bit Philox draw feeds two masks
# (cells and states), which halves the random-number cost that dominated
# zoneout's overhead (PERF.md). A probability is rounded to a multiple of 2**-16.
_MASK_BITS = 16
_MASK_LEVELS = 1 << _MASK_BITS


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as a float if it lies in [0, 1], else raise ValueError."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` is a probability and must lie in [0, 1]. Received: {name}={value}")
    return value


def check_inference_mode(value: str) -> str:
    """Return ``value`` if it is a known inference mode, else raise ValueError."""
    if value not in INFERENCE_MODES:
        raise ValueError(f"`zoneout_inference` must be one of {INFERENCE_MODES}. Received: {value!r}")
    return value


def seed_tensor(seed) -> tf.Tensor:
    """Turn ``seed`` (int, [2] tensor or ``keras.random.SeedGenerator``) into a [2] int32 seed.

    A SeedGenerator is advanced by one, so successive calls draw fresh masks
    that are still a pure function of the generator's initial seed.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    if isinstance(seed, numbers.Integral):
        return tf.constant([int(seed) & 0x7FFFFFFF, 0], tf.int32)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2):
        raise ValueError(f"`seed` must be an int or a tensor of shape [2]. Received shape {seed.shape}")
    # Bit-preserving cast: Keras seed states may be uint32 or int64.
    return tf.cast(tf.cast(seed, tf.int64) % (1 << 31), tf.int32)


def _threshold(rate: float) -> int:
    return round(rate * _MASK_LEVELS)


def keep_mask_pair(shape, rates: tuple[float, float], seed, shared=False):
    """Draw two Bernoulli keep masks from one stateless draw.

    Args:
        shape: mask shape, e.g. ``[T, B, H]``.
        rates: keep probabilities ``(z_first, z_second)``, each in [0, 1].
        seed: int, [2] int tensor or ``keras.random.SeedGenerator``.
        shared: compare both rates against the same uniform draw, so the masks are
            nested (identical when the rates are equal); else they are independent.

    Returns:
        Two bool tensors of ``shape``; True where the previous value is kept.
        Each rate is resolved to a multiple of 2**-16.
    """
    bits = tf.random.stateless_uniform(
        shape, seed=seed_tensor(seed), minval=None, maxval=None, dtype=tf.uint32
    )
    high = tf.bitwise.right_shift(bits, _MASK_BITS)
    low = high if shared else tf.bitwise.bitwise_and(bits, _MASK_LEVELS - 1)
    return low < _threshold(rates[0]), high < _threshold(rates[1])


def keep_mask(shape, rate: float, seed) -> tf.Tensor:
    """Draw one Bernoulli(``rate``) bool keep mask of ``shape`` (True = keep the previous value)."""
    bits = tf.random.stateless_uniform(
        shape, seed=seed_tensor(seed), minval=None, maxval=None, dtype=tf.uint32
    )
    return tf.bitwise.right_shift(bits, _MASK_BITS) < _threshold(rate)


def mix(keep, prev, candidate):
    """Apply a keep factor: ``keep * prev + (1 - keep) * candidate``.

    ``keep`` is None (no zoneout: returns ``candidate``), a bool mask (an exact
    select, so a kept unit equals its previous value bit for bit), or a float
    factor broadcastable to the states (the inference expectation).
    """
    if keep is None:
        return candidate
    if keep.dtype == tf.bool:
        return tf.where(keep, prev, candidate)
    return keep * prev + (1.0 - keep) * candidate


def zoneout(
    new,
    prev,
    rate: float,
    training,
    seed=None,
    inference: str = "expectation",
):
    """Zoneout: keep each unit's previous value with probability ``rate``.

    training:   ``d * prev + (1 - d) * new`` with ``d ~ Bernoulli(rate)`` per element.
    inference:  ``rate * prev + (1 - rate) * new`` ("expectation", the paper's choice)
                or ``new`` ("deterministic").

    Args:
        new: candidate state, any shape, e.g. ``[B, H]``.
        prev: previous state, same shape as ``new``.
        rate: probability of KEEPING the previous value, in [0, 1]; 0 is a no-op.
        training: Python bool or boolean scalar tensor.
        seed: int, [2] int tensor or ``keras.random.SeedGenerator`` (advanced by one);
            ``None`` draws from TensorFlow's global generator.
        inference: "expectation" or "deterministic".

    Returns:
        A tensor shaped like ``new``.

    Example:
        >>> h = tz.zoneout(tf.ones([2, 3]), tf.zeros([2, 3]), 0.5, training=False)
        >>> float(h[0, 0])
        0.5
    """
    rate = check_probability(rate, "rate")
    check_inference_mode(inference)
    new = tf.convert_to_tensor(new)
    prev = tf.convert_to_tensor(prev, dtype=new.dtype)
    if new.shape.is_fully_defined() and prev.shape.is_fully_defined() and new.shape != prev.shape:
        raise ValueError(f"`new` and `prev` must have one shape. Received {new.shape} and {prev.shape}")
    if rate == 0.0:
        return new

    def train_branch():
        if seed is None:
            keep = tf.random.uniform(tf.shape(new)) < rate
        else:
            keep = keep_mask(tf.shape(new), rate, seed)
        return mix(keep, prev, new)

    def infer_branch():
        if inference == "deterministic":
            return new
        return mix(tf.constant(rate, new.dtype), prev, new)

    if isinstance(training, tf.Tensor):
        return tf.cond(training, train_branch, infer_branch)
    return train_branch() if training else infer_branch()


def keep_factors(
    shape,
    rates,
    training,
    seed,
    dtype=tf.float32,
    share_mask: bool = False,
    inference: str = "expectation",
):
    """Keep factors for a tuple of states (one or two), as the kernels consume them.

    Args:
        shape: shape of a training mask, e.g. ``[T, B, H]`` (per step) or ``[B, H]``.
        rates: tuple of keep probabilities, one per state.
        training: Python bool or boolean scalar tensor.
        seed: int, [2] int tensor or ``keras.random.SeedGenerator``.
        share_mask: draw one mask for both states (see ``keep_mask_pair``).
        inference: "expectation" (keep factor = rate) or "deterministic" (no zoneout).

    Returns:
        A tuple with one entry per rate, for ``mix``: None (no zoneout for that
        state), a float scalar (inference expectation) or a bool mask of
        ``shape`` (training); a float 0/1 mask when ``training`` is a tensor.
    """
    rates = tuple(rates)
    if not any(rates):
        return (None,) * len(rates)

    def masks():
        if len(rates) == 1:
            return (keep_mask(shape, rates[0], seed),)
        return keep_mask_pair(shape, rates, seed, shared=share_mask)

    def expected(rate):
        if inference == "deterministic":
            return None
        return tf.constant(rate, dtype)

    if isinstance(training, tf.Tensor):
        drawn = masks()
        inference_keep = [expected(r) if inference == "expectation" else tf.zeros([], dtype) for r in rates]
        return tuple(
            None if rate == 0 else tf.where(training, tf.cast(m, dtype), k)
            for rate, m, k in zip(rates, drawn, inference_keep)
        )
    if training:
        return tuple(None if rate == 0 else m for rate, m in zip(rates, masks()))
    return tuple(None if rate == 0 else expected(rate) for rate in rates)
