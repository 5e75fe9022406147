"""The zoneout operation, its keep factors, and argument checks (Krueger et al., ICLR 2017)."""

from __future__ import annotations

import numbers

import tensorflow as tf

from tf_zoneout import masks

INFERENCE_MODES = ("expectation", "deterministic")


def check_probability(value: float, name: str) -> float:
    """Return ``value`` as a float if it lies in [0, 1].

    Args:
        value: the probability.
        name: the argument's name, for the message.

    Raises:
        ValueError: it is not a number in [0, 1].
    """
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"`{name}` must be a number in [0, 1]. Received: {name}={value!r}")
    value = float(value)
    if not 0.0 <= value <= 1.0:
        raise ValueError(f"`{name}` is a probability and must lie in [0, 1]. Received: {name}={value}")
    return value


def check_inference_mode(value: str) -> str:
    """Return ``value`` if it is a known inference mode.

    Args:
        value: "expectation" or "deterministic".

    Raises:
        ValueError: any other value.
    """
    if value not in INFERENCE_MODES:
        raise ValueError(f"`zoneout_inference` must be one of {INFERENCE_MODES}. Received: {value!r}")
    return value


def keep_mask(shape, rate: float, seed) -> tf.Tensor:
    """A Bernoulli(``rate``) bool keep mask of ``shape`` (True = keep the previous value).

    Args:
        shape: the mask's shape, e.g. [B, H].
        rate: the keep probability, resolved to a multiple of 2**-16.
        seed: an int, a [2] int tensor or a ``keras.random.SeedGenerator`` (advanced by one).
    """
    (mask,) = masks.hashed_masks([rate], seed, per_step=False)
    return masks.materialize(mask, shape)


def keep_mask_pair(shape, rates: tuple[float, float], seed, shared: bool = False):
    """Two bool keep masks of ``shape`` from one hash: independent, or nested if ``shared``.

    Args:
        shape: each mask's shape.
        rates: the two keep probabilities.
        seed: as for ``keep_mask``.
        shared: nested masks (the lower rate's keeps are a subset of the higher's; identical for
            equal rates) instead of independent ones.
    """
    return tuple(masks.materialize(m, shape) for m in masks.hashed_masks(rates, seed, False, shared))


def mix(keep, prev, candidate):
    """Apply a keep factor: ``keep * prev + (1 - keep) * candidate``.

    Args:
        keep: None (no zoneout: returns ``candidate``), a bool mask (an exact select, so a kept
            unit equals its previous value bit for bit), or a float factor broadcastable to the
            states (the inference expectation).
        prev: the previous state, e.g. [B, H].
        candidate: the new state, shaped like ``prev``.
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

    Raises:
        ValueError: ``rate`` outside [0, 1], an unknown ``inference``, or ``new`` and ``prev`` of
            different shapes.

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
    rates,
    training,
    seed,
    step_shape,
    num_steps=None,
    *,
    dtype=tf.float32,
    share_mask: bool = False,
    inference: str = "expectation",
    static_mask: bool = False,
    lazy: bool = False,
):
    """Keep factors for a tuple of states (one or two), in the forms ``mix`` takes.

    Args:
        rates: tuple of keep probabilities, one per state.
        training: Python bool or boolean scalar tensor.
        seed: int, [2] int tensor or ``keras.random.SeedGenerator`` (advanced by one).
        step_shape: shape of one step's state, [B, H].
        num_steps: T for per-step masks over a sequence; None for a single step.
        dtype: float dtype of inference factors.
        share_mask: one draw for both states (nested masks, identical for equal rates).
        inference: "expectation" (keep factor = rate) or "deterministic" (no zoneout).
        static_mask: one mask per sequence instead of one per step.
        lazy: return training masks as ``masks.HashedMask`` for the fused kernel,
            which generates them step by step, instead of bool tensors.

    Returns:
        One entry per rate: None (no zoneout for that state), a float scalar
        (inference expectation), a bool mask ([T, B, H] per step, [B, H] static or
        single-step) or a ``HashedMask``; a float 0/1 tensor when ``training`` is a tensor.
    """
    rates = tuple(rates)
    if not any(rates):
        return (None,) * len(rates)
    per_step = num_steps is not None and not static_mask

    def drawn(lazy_ok):
        specs = masks.hashed_masks(rates, seed, per_step, share_mask)
        if lazy_ok:
            return specs
        return tuple(masks.materialize(m, step_shape, num_steps) for m in specs)

    def expected(rate):
        return None if inference == "deterministic" else tf.constant(rate, dtype)

    if isinstance(training, tf.Tensor):
        inference_keeps = [expected(r) if inference == "expectation" else tf.zeros([], dtype) for r in rates]
        return tuple(
            None if rate == 0 else tf.where(training, tf.cast(m, dtype), k)
            for rate, m, k in zip(rates, drawn(False), inference_keeps)
        )
    if training:
        return tuple(None if rate == 0 else m for rate, m in zip(rates, drawn(lazy)))
    return tuple(None if rate == 0 else expected(rate) for rate in rates)
