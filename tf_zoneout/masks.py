"""Zoneout keep masks from a counter-based hash, generated where they are used.

Drawing [T, B, H] masks with TensorFlow's Philox kernels cost 5-15% of a training
step (measured on 2-core CPUs at H=256-1000). Here a mask element is a pure function of (seed, position): the
fused kernel computes each step's mask inside its XLA loop with a few integer ops
(forward and backward recompute the same bits, so nothing is stored or read), and
the same function materialises whole masks where a tensor is needed.

Element (t, b, u) of a per-step mask uses counter t*B*H + b*H + u; a static
(per-sequence) mask uses b*H + u. The counter is a 64-bit index kept as two 32-bit words
(``counter_words``): a step's offsets b*H + u are 32-bit and its base t*B*H is one int64 scalar, so
the arithmetic runs on the device in uint32 (TensorFlow keeps int32 tensors on the host) and stays
distinct past 2**31 and 2**32 elements; below 2**32 the high word is 0 and contributes nothing. The
32 hash bits give two independent 16-bit uniforms (bits 16-31 and 0-15), one per LSTM state, so
probabilities are resolved to multiples of 2**-16.

Masks are integer functions of the seed and nothing else: the key is an integer hash of the seed,
not a draw of TensorFlow's random ops (which may give other values inside XLA-compiled functions), so
the same seed gives the same masks with or without ``jit_compile``, on any device.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import keras
import tensorflow as tf

MASK_BITS = 16
MASK_LEVELS = 1 << MASK_BITS


class HashedMask(NamedTuple):
    """A Bernoulli keep mask, not yet materialised (a tf.function-friendly value).

    Attributes:
        key: [2] uint32 tensor derived from the seed.
        threshold: keep where the selected 16 bits are < threshold (rate * 2**16).
        low_bits: use bits 0-15 of the hash (else bits 16-31).
        per_step: a fresh mask at every step (else one mask per sequence).
    """

    key: tf.Tensor
    threshold: int
    low_bits: bool
    per_step: bool


def seed_tensor(seed) -> tf.Tensor:
    """Turn ``seed`` (int, [2] int tensor or ``keras.random.SeedGenerator``) into a [2] int64 seed.

    A SeedGenerator is advanced by one, so successive calls draw fresh masks that
    are still a pure function of the generator's initial seed.
    """
    if isinstance(seed, keras.random.SeedGenerator):
        seed = seed.next()
    if isinstance(seed, numbers.Integral):
        return tf.constant([int(seed), 0], tf.int64)
    seed = tf.convert_to_tensor(seed)
    if seed.shape.rank != 1 or (seed.shape[0] is not None and seed.shape[0] != 2):
        raise ValueError(f"`seed` must be an int or a tensor of shape [2]. Received shape {seed.shape}")
    return tf.cast(seed, tf.int64)


def mix32(x):
    """A 32-bit integer hash with strong avalanche (C. Wellons' "lowbias32")."""
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))
    x = x * tf.constant(0x7FEB352D, tf.uint32)
    x = tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 15))
    x = x * tf.constant(0x846CA68B, tf.uint32)
    return tf.bitwise.bitwise_xor(x, tf.bitwise.right_shift(x, 16))


def _replica_index():
    """This replica's index in its sync group under a multi-replica strategy, else None."""
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return None
    return context.replica_id_in_sync_group


_GOLDEN = 0x9E3779B9  # 2**32 / golden ratio: decorrelates the words mixed in


def hash_key(seed) -> tf.Tensor:
    """[2] uint32 key for ``random_bits`` from an int, [2] tensor or SeedGenerator.

    An integer hash of the seed's four 32-bit words (and of the replica's index under a
    multi-replica strategy, so that every replica draws its own masks from the same seed state):
    the same bits wherever and however it is compiled."""
    words = tf.reshape(tf.bitcast(seed_tensor(seed), tf.uint32), [4])
    state = tf.constant(0x243F6A88, tf.uint32)
    for index in range(4):
        state = mix32(tf.bitwise.bitwise_xor(state, words[index]) + tf.constant(_GOLDEN, tf.uint32))
    replica = _replica_index()
    if replica is not None:
        state = mix32(tf.bitwise.bitwise_xor(state, mix32(tf.cast(replica, tf.uint32) + _GOLDEN)))
    multiplier = tf.bitwise.bitwise_or(mix32(state ^ tf.constant(0x85EBCA6B, tf.uint32)), 1)
    # An odd multiplier makes counter -> counter * key[0] + key[1] a bijection.
    return tf.stack([multiplier, mix32(state ^ tf.constant(0xC2B2AE35, tf.uint32))])


def counter_words(base, offsets):
    """The 64-bit counters ``base + offsets`` as (low, high) uint32 words, without 64-bit vectors.

    Args:
        base: an int64 scalar (or a tensor broadcastable against ``offsets``, e.g. [T, 1]), >= 0.
        offsets: uint32 offsets (< 2**32) added to it.

    Returns:
        ``(low, high)``, each shaped like ``base + offsets``: ``low`` wraps at 2**32 and ``high``
        takes the carry.
    """
    base = tf.cast(base, tf.int64)
    base_low = tf.cast(tf.bitwise.bitwise_and(base, 0xFFFFFFFF), tf.uint32)
    base_high = tf.cast(tf.bitwise.right_shift(base, 32), tf.uint32)
    low = base_low + offsets
    carry = tf.cast(low < base_low, tf.uint32)
    return low, base_high + carry


def random_bits(counter, key, high=None):
    """32 random bits per element of the uint32 ``counter`` (the low words of the counters; ``high``
    their high words, None for 0), keyed by ``key`` [2]."""
    mixed = counter * key[0] + key[1]
    if high is not None:  # one multiply-add per element (this runs at every step of the loop);
        # counters below 2**32 (high 0) hash as with high None, and i and i + 2**32 differ
        mixed = mixed + high * tf.constant(_GOLDEN, tf.uint32)
    return mix32(mixed)


def _selected_bits(bits, mask: HashedMask):
    if mask.low_bits:
        return tf.bitwise.bitwise_and(bits, MASK_LEVELS - 1)
    return tf.bitwise.right_shift(bits, MASK_BITS)


def _keep_from_bits(bits, mask: HashedMask):
    return _selected_bits(bits, mask) < tf.constant(mask.threshold, tf.uint32)


def _keep_factor_from_bits(bits, mask: HashedMask, dtype):
    """1.0 where kept, else 0.0, from the sign bit of (bits - threshold).

    The kernels mix with 0/1 factors (exact for binary values) rather than bool
    selects; this makes them without a predicate tensor in between.
    """
    below = tf.bitwise.right_shift(_selected_bits(bits, mask) - tf.constant(mask.threshold, tf.uint32), 31)
    return tf.cast(below, dtype)


def threshold(rate: float) -> int:
    """The 16-bit threshold for a keep probability (rate 1 keeps everything)."""
    return round(rate * MASK_LEVELS)


def _step_offsets(step_shape):
    """[B, H] uint32 offsets b*H + u of one step's elements (int64 range: TensorFlow's Range has no
    uint32 kernel, and its int32 one runs on the host)."""
    return tf.reshape(tf.cast(tf.range(_step_size(step_shape), dtype=tf.int64), tf.uint32), step_shape)


def _step_size(step_shape):
    return tf.reduce_prod(tf.cast(step_shape, tf.int64))


def _sequence_bits(mask: HashedMask, step_shape, num_steps):
    """Hash bits of the whole mask: [T, B, H] if ``mask.per_step`` else ``step_shape``."""
    offsets = _step_offsets(step_shape)
    if not mask.per_step:
        return random_bits(offsets, mask.key)
    bases = tf.range(tf.cast(num_steps, tf.int64), dtype=tf.int64) * _step_size(step_shape)
    low, high = counter_words(tf.reshape(bases, [-1, 1, 1]), offsets[None])
    return random_bits(low, mask.key, high)


def materialize(mask: HashedMask, step_shape, num_steps=None) -> tf.Tensor:
    """The bool mask as a tensor: [T, B, H] if ``mask.per_step`` else ``step_shape`` [B, H]."""
    return _keep_from_bits(_sequence_bits(mask, step_shape, num_steps), mask)


def materialize_factor(mask: HashedMask, step_shape, num_steps, dtype=tf.float32) -> tf.Tensor:
    """Like ``materialize``, as 1.0/0.0 factors of ``dtype``."""
    return _keep_factor_from_bits(_sequence_bits(mask, step_shape, num_steps), mask, dtype)


def mask_at_step(mask: HashedMask, t, step_shape, dtype=tf.float32) -> tf.Tensor:
    """Step ``t``'s [B, H] keep factor, 1.0 or 0.0: ``materialize(mask, ...)[t]`` as ``dtype``."""
    offsets = _step_offsets(step_shape)
    if not mask.per_step:
        return _keep_factor_from_bits(random_bits(offsets, mask.key), mask, dtype)
    low, high = counter_words(tf.cast(t, tf.int64) * _step_size(step_shape), offsets)
    return _keep_factor_from_bits(random_bits(low, mask.key, high), mask, dtype)


def _unit_uniform(bits):
    """(0, 1) floats from the 24 high bits, never exactly 0 or 1."""
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / float(1 << 24)


def normal_noise(shape, seed, dtype=tf.float32) -> tf.Tensor:
    """Standard normal noise of ``shape`` (fewer than 2**32 elements) from the same integer hash
    as the masks (Box-Muller on two hashed uniforms per element), so the same seed gives the same
    noise with or without XLA: TensorFlow's ``stateless_normal`` gave other values inside a
    ``jit_compile=True`` function on a CPU (measured here: differences of 0.9 in a layer's output).

    Args:
        shape: the noise's shape (a list or a 1-D int tensor).
        seed: int, [2] int tensor or ``keras.random.SeedGenerator`` (advanced by one).
        dtype: the float dtype of the result (computed in float32).
    """
    key = hash_key(seed)
    other = tf.stack([key[0], mix32(key[1] ^ tf.constant(0x27D4EB2F, tf.uint32))])
    offsets = tf.cast(tf.range(tf.reduce_prod(tf.cast(shape, tf.int64)), dtype=tf.int64), tf.uint32)
    radius = tf.sqrt(-2.0 * tf.math.log(_unit_uniform(random_bits(offsets, key))))
    angle = (2.0 * 3.141592653589793) * _unit_uniform(random_bits(offsets, other))
    return tf.cast(tf.reshape(radius * tf.cos(angle), shape), dtype)


def hashed_masks(rates, seed, per_step: bool, share_mask: bool = False) -> tuple[HashedMask, ...]:
    """One HashedMask per rate (one or two), all from one key.

    With two rates the masks use different halves of the hash (independent masks),
    or, with ``share_mask``, the same half (nested masks, identical for equal rates).
    """
    key = hash_key(seed)
    halves = [False] if len(rates) == 1 else ([False, False] if share_mask else [False, True])
    return tuple(HashedMask(key, threshold(r), low, per_step) for r, low in zip(rates, halves))
