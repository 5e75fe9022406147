"""In-graph, seeded, stateless sampling of next tokens: temperature, top-k, top-p.

Everything here is TensorFlow ops, so it runs inside an exported SavedModel. Each
example has its own int64 seed; the same (seed, step) always gives the same draw,
whatever else is in the batch.
"""

from __future__ import annotations

import tensorflow as tf

from tf_zoneout.masks import mix32


def per_example_uniform(seeds, step, num_values):
    """Uniform (0, 1) noise [B, V] keyed by (seed of the row, ``step``, column).

    Args:
        seeds: [B] int64. step: scalar int. num_values: V.
    """
    seeds = tf.cast(seeds, tf.int64)
    low = tf.cast(tf.bitwise.bitwise_and(seeds, 0xFFFFFFFF), tf.uint32)
    high = tf.cast(tf.bitwise.bitwise_and(tf.bitwise.right_shift(seeds, 32), 0xFFFFFFFF), tf.uint32)
    k0 = tf.bitwise.bitwise_or(mix32(low ^ mix32(high + tf.constant(0x9E3779B9, tf.uint32))), 1)
    k1 = mix32(k0 ^ mix32(tf.cast(step, tf.uint32) + tf.constant(0x85EBCA6B, tf.uint32)))
    counter = tf.cast(tf.range(num_values), tf.uint32)
    bits = mix32(counter[None, :] * k0[:, None] + k1[:, None])
    # 24 high bits -> (0, 1), never exactly 0 or 1.
    return (tf.cast(tf.bitwise.right_shift(bits, 8), tf.float32) + 0.5) / float(1 << 24)


def filter_top_k(logits, top_k):
    """Keep each row's ``top_k`` largest logits (others -> -inf); k <= 0 or >= V keeps all.

    logits: [B, V] float32; top_k: [B] int32.
    """
    vocab = tf.shape(logits)[1]
    k = tf.where((top_k <= 0) | (top_k >= vocab), vocab, top_k)
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    kth = tf.gather(sorted_logits, k - 1, batch_dims=1)
    return tf.where(logits < kth[:, None], tf.constant(-np_inf(), logits.dtype), logits)


def filter_top_p(logits, top_p):
    """Nucleus filter: keep the smallest set of most likely tokens whose mass reaches ``top_p``.

    logits: [B, V] (already temperature-scaled); top_p: [B] float32; p >= 1 keeps all.
    """
    sorted_logits = tf.sort(logits, axis=-1, direction="DESCENDING")
    probs = tf.nn.softmax(sorted_logits, axis=-1)
    mass_before = tf.cumsum(probs, axis=-1, exclusive=True)
    keep = mass_before < top_p[:, None]
    # The lowest kept logit per row (the most likely token is always kept).
    threshold = tf.reduce_min(tf.where(keep, sorted_logits, sorted_logits[:, :1]), axis=-1)
    filtered = tf.where(logits < threshold[:, None], tf.constant(-np_inf(), logits.dtype), logits)
    return tf.where((top_p >= 1.0)[:, None], logits, filtered)


def np_inf() -> float:
    return float("inf")


def sample_next(logits, temperature, top_k, top_p, seeds, step):
    """Next token ids [B] int32 from logits [B, V].

    temperature [B] (<= 0: greedy), top_k [B] int32, top_p [B] float32, seeds [B] int64.
    Draws by the Gumbel-max trick with ``per_example_uniform`` noise.
    """
    logits = tf.cast(logits, tf.float32)
    greedy = temperature <= 0.0
    safe_temperature = tf.where(greedy, 1.0, temperature)
    scaled = filter_top_k(logits, top_k) / safe_temperature[:, None]
    scaled = filter_top_p(scaled, top_p)
    noise = -tf.math.log(-tf.math.log(per_example_uniform(seeds, step, tf.shape(logits)[1])))
    sampled = tf.argmax(scaled + noise, axis=-1, output_type=tf.int32)
    return tf.where(greedy, tf.argmax(logits, axis=-1, output_type=tf.int32), sampled)
