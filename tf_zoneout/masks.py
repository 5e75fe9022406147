"""Zoneout keep masks from a counter-based hash, generated where they are used.

Drawing [T, B, H] masks with TensorFlow's Philox kernels cost 5-15% of a training
step (measured on 2-core CPUs at H=256-1000). Here a mask element is a pure function of (seed, position): the
fused kernel computes each step's mask inside its XLA loop with a few integer ops
(forward and backward recompute the same bits, so nothing is stored or read), and
the same function materialises whole masks where a tensor is needed.

Element (t, b, u) of a per-step mask uses counter t*B*H + b*H + u; a static
(per-sequence) mask uses b*H + u. The 32 hash bits give two independent 16-bit
uniforms (bits 16-31 and 0-15), one per LSTM state, so probabilities are resolved
to multiples of 2**-16.
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


def hash_key(seed) -> tf.Tensor:
    """[2] uint32 key for ``random_bits`` from an int, [2] tensor or SeedGenerator.

    One stateless Philox draw from the seed (a handful of graph ops: a key built from integer
    hashes took about 100 ops, half of the time it took to trace a layer call)."""
    seed = seed_tensor(seed)
    replica = _replica_index()
    if replica is not None:
        # Under tf.distribute every replica draws its own masks from the same seed state.
        seed = tf.random.experimental.stateless_fold_in(seed, replica)
    key = tf.random.stateless_uniform([2], seed, minval=None, maxval=None, dtype=tf.uint32)
    # An odd multiplier makes counter -> counter * key[0] + key[1] a bijection.
    return tf.bitwise.bitwise_or(key, tf.constant([1, 0], tf.uint32))


def random_bits(counter, key):
    """32 random bits per element of the uint32 ``counter`` tensor, keyed by ``key`` [2]."""
    return mix32(counter * key[0] + key[1])


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


def _sequence_bits(mask: HashedMask, step_shape, num_steps):
    """Hash bits of the whole mask: [T, B, H] if ``mask.per_step`` else ``step_shape``."""
    shape = tf.concat([[num_steps], step_shape], 0) if mask.per_step else step_shape
    counter = tf.cast(tf.reshape(tf.range(tf.reduce_prod(shape)), shape), tf.uint32)
    return random_bits(counter, mask.key)


def materialize(mask: HashedMask, step_shape, num_steps=None) -> tf.Tensor:
    """The bool mask as a tensor: [T, B, H] if ``mask.per_step`` else ``step_shape`` [B, H]."""
    return _keep_from_bits(_sequence_bits(mask, step_shape, num_steps), mask)


def materialize_factor(mask: HashedMask, step_shape, num_steps, dtype=tf.float32) -> tf.Tensor:
    """Like ``materialize``, as 1.0/0.0 factors of ``dtype``."""
    return _keep_factor_from_bits(_sequence_bits(mask, step_shape, num_steps), mask, dtype)


def mask_at_step(mask: HashedMask, t, step_shape, dtype=tf.float32) -> tf.Tensor:
    """Step ``t``'s [B, H] keep factor, 1.0 or 0.0: ``materialize(mask, ...)[t]`` as ``dtype``."""
    size = tf.reduce_prod(step_shape)
    counter = tf.reshape(tf.range(size), step_shape)
    if mask.per_step:
        counter = counter + t * size
    return _keep_factor_from_bits(random_bits(tf.cast(counter, tf.uint32), mask.key), mask, dtype)


def hashed_masks(rates, seed, per_step: bool, share_mask: bool = False) -> tuple[HashedMask, ...]:
    """One HashedMask per rate (one or two), all from one key.

    With two rates the masks use different halves of the hash (independent masks),
    or, with ``share_mask``, the same half (nested masks, identical for equal rates).
    """
    key = hash_key(seed)
    halves = [False] if len(rates) == 1 else ([False, False] if share_mask else [False, True])
    return tuple(HashedMask(key, threshold(r), low, per_step) for r, low in zip(rates, halves))
