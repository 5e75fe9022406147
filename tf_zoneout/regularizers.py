"""The paper's comparison set, as pieces the fast layers apply (Krueger et al. 2017, Table 1).

- weight noise (Graves 2011): Gaussian noise on the input and recurrent weights,
  drawn once per training call; the stored weights never change.
- stochastic depth (as adapted in the zoneout paper): with probability p an example
  keeps its whole state at a step (zoneout of all units at once).
- norm stabilizer (Krueger & Memisevic 2016): beta * mean_t (||s_t|| - ||s_{t-1}||)^2.
- variational dropout (Gal & Ghahramani 2016): one inverted-dropout mask per sequence
  on the inputs and one on h_{t-1} before the recurrent matmul.
- input-gate dropout (Semeniuta et al. 2016, "recurrent dropout without memory
  loss"): c_t = f * c_{t-1} + d_t * i_t * g_t; the factor itself is applied in the
  kernels' step math (kernels/lstm.py, kernels/gru.py).
"""

from __future__ import annotations

import math
import numbers

import tensorflow as tf

from tf_zoneout import masks
from tf_zoneout.zoneout import check_probability


def check_non_negative(value, name: str) -> float:
    """Return ``value`` as a float if it is a finite number >= 0.

    Args:
        value: the number.
        name: the argument's name, for the message.

    Raises:
        ValueError: it is negative, not finite or not a number.
    """
    if (
        isinstance(value, bool)
        or not isinstance(value, numbers.Real)
        or not math.isfinite(value)
        or value < 0
    ):
        raise ValueError(f"`{name}` must be a finite number >= 0. Received: {name}={value!r}")
    return float(value)


def noisy(weight, sigma: float, seed) -> tf.Tensor:
    """``weight + sigma * N(0, 1)``: weight noise, drawn once per call.

    Args:
        weight: the weight tensor, any shape.
        sigma: the noise's standard deviation.
        seed: int, [2] tensor or ``keras.random.SeedGenerator`` (advanced by one).
    """
    noise = masks.normal_noise(tf.shape(weight), seed, weight.dtype)  # the same with or without XLA
    return weight + tf.cast(sigma, weight.dtype) * noise


def whole_state_keep(rate: float, training, seed, batch, num_steps, dtype):
    """Stochastic depth's keep factor for every unit of an example at a step.

    Args:
        rate: the probability of keeping the whole previous state.
        training: Python bool or boolean scalar tensor.
        seed: int, [2] tensor or ``keras.random.SeedGenerator``.
        batch: B.
        num_steps: T.
        dtype: float dtype of the inference factor.

    Returns None (rate 0), a bool [T, B, 1] mask (training) or the float ``rate``
    (inference: the expectation); a float [T, B, 1] 0/1 tensor if ``training`` is a tensor.
    """
    if rate == 0:
        return None

    def drawn():
        (mask,) = masks.hashed_masks([rate], seed, per_step=True)
        return masks.materialize(mask, tf.stack([batch, 1]), num_steps)

    if isinstance(training, tf.Tensor):
        return tf.where(training, tf.cast(drawn(), dtype), tf.constant(rate, dtype))
    return drawn() if training else tf.constant(rate, dtype)


def update_factor(drop: float, training, seed, dtype, per_step: bool = True):
    """Input-gate dropout's factor d_t: a HashedMask keeping the update with 1 - drop
    (training), or the float 1 - drop (inference); None when drop is 0.

    Args:
        drop: the probability of dropping a unit's update.
        training: Python bool or boolean scalar tensor.
        seed: int, [2] tensor or ``keras.random.SeedGenerator``.
        dtype: float dtype of the factor.
        per_step: a new mask at every step (else one per sequence).

    Raises:
        ValueError: ``training`` is a tensor (the mask's form depends on it).
    """
    if drop == 0:
        return None
    keep = 1.0 - drop
    if isinstance(training, tf.Tensor):
        raise ValueError("input_gate_dropout needs a Python bool `training`, not a tensor")
    if not training:
        return tf.constant(keep, dtype)
    (mask,) = masks.hashed_masks([keep], seed, per_step=per_step)
    return mask


def norm_stabilizer_loss(sequence, initial, beta: float) -> tf.Tensor:
    """beta * mean over t and the batch of (||s_t|| - ||s_{t-1}||)^2.

    Args:
        sequence: [T, B, H] states s_1..s_T.
        initial: [B, H] the state s_0 before the first step.
        beta: the penalty's weight (Krueger & Memisevic, 2016).
    """
    norms = tf.norm(tf.concat([initial[None], sequence], 0), axis=-1)  # [T + 1, B]
    return tf.cast(beta, norms.dtype) * tf.reduce_mean(tf.square(norms[1:] - norms[:-1]))


def check_variational(value) -> tuple[float, float]:
    """``variational_dropout`` as (input, recurrent) drop probabilities, each in [0, 1).

    Args:
        value: one probability for both, or an (input, recurrent) pair.

    Raises:
        ValueError: a probability outside [0, 1), or not one number or a pair.
    """
    pair = tuple(value) if isinstance(value, list | tuple) else (value, value)
    if len(pair) != 2:
        raise ValueError(
            "`variational_dropout` is one drop probability or an (input, recurrent) pair. "
            f"Received: {value!r}"
        )
    checked = tuple(check_probability(p, "variational_dropout") for p in pair)
    if any(p == 1.0 for p in checked):
        raise ValueError(
            f"`variational_dropout` must be < 1 (inverted dropout divides by 1 - p). Received: {value!r}"
        )
    return checked


def variational_mask(drop: float, training, seed, shape, dtype):
    """One inverted-dropout mask of ``shape`` ([B, features], constant over time): 0 or
    1 / (1 - drop) in training; None at inference or when ``drop`` is 0.

    Args:
        drop: the drop probability.
        training: Python bool or boolean scalar tensor.
        seed: int, [2] tensor or ``keras.random.SeedGenerator``.
        shape: [B, features].
        dtype: the mask's float dtype.
    """
    if drop == 0 or training is not True:
        return None
    (mask,) = masks.hashed_masks([1.0 - drop], seed, per_step=False)
    return masks.materialize_factor(mask, shape, None, dtype) / tf.cast(1.0 - drop, dtype)


def combine_keeps(a, b):
    """Keep where either factor keeps: ``a | b`` for masks, ``1 - (1 - a)(1 - b)`` for factors.

    Args:
        a: a keep factor in any form ``zoneout.mix`` takes, or None.
        b: the same.
    """
    if a is None or b is None:
        return b if a is None else a
    if a.dtype == tf.bool and b.dtype == tf.bool:
        return tf.logical_or(a, b)
    dtype = a.dtype if a.dtype != tf.bool else b.dtype
    a, b = tf.cast(a, dtype), tf.cast(b, dtype)
    return 1.0 - (1.0 - a) * (1.0 - b)


__all__ = [
    "check_non_negative",
    "check_probability",
    "check_variational",
    "combine_keeps",
    "noisy",
    "norm_stabilizer_loss",
    "update_factor",
    "variational_mask",
    "whole_state_keep",
]
