"""Recurrent batch normalization (Cooijmans et al., ICLR 2017) for the LSTM, with zoneout.

    (i, f, o, g) = BN(h_{t-1} U; gamma_h) + BN(x_t W; gamma_x) + b
    c~_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h~_t = sigmoid(o) * tanh(BN(c~_t; gamma_c, beta_c))

Each BN uses statistics of its own time step: batch statistics in training, and
population statistics (moving averages kept per step) at inference; steps beyond
``max_timesteps`` reuse the last step's statistics. gamma starts at 0.1 (the paper's
advice, which keeps tanh/sigmoid out of saturation), beta at 0. Gates are in Keras's
order (i, f, c, o). Zoneout is applied to c~ and h~ exactly as in ``ZoneoutLSTM``.

The input projection and its normalization are hoisted out of the loop; the loop itself and its
hand-written backward pass are ``tf_zoneout.kernels.batch_norm_lstm`` (with ``jit_compile`` both are
XLA computations). ``jit_compile="auto"`` picks XLA or graph mode by measuring, as the
zoneout layers do (``tf_zoneout.kernel_choice``).
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_zoneout import kernel_choice
from tf_zoneout.cells import check_units
from tf_zoneout.kernels.batch_norm_lstm import normalize, recurrence
from tf_zoneout.layers import recurrence_dtype
from tf_zoneout.zoneout import check_inference_mode, check_probability, keep_factors


def replicas_statistics(pairs):
    """Each (mean, variance) pair of the replicas' batches, as the statistics of their union.

    Under a multi-replica strategy every replica normalizes with its own batch's statistics (as
    Keras's ``BatchNormalization`` without ``synchronized``), but the population statistics must
    be one: this all-reduces (mean, variance + mean**2) over the replicas, once for all pairs, and
    returns mean and variance of the whole global batch (exact for equal replica batches, which
    the training loop ensures). Outside such a strategy it returns ``pairs`` as they are.

    Args:
        pairs: (mean, variance) tensors of this replica's batch, each [T, size].
    """
    context = tf.distribute.get_replica_context()
    if context is None or context.num_replicas_in_sync == 1:
        return list(pairs)
    moments = context.all_reduce(
        tf.distribute.ReduceOp.MEAN, [t for mean, variance in pairs for t in (mean, variance + mean * mean)]
    )
    return [(mean, second - mean * mean) for mean, second in zip(moments[::2], moments[1::2])]


@keras.saving.register_keras_serializable(package="tf_zoneout")
class RecurrentBatchNormLSTM(kernel_choice.KernelChoiceMixin, keras.layers.Layer):
    """LSTM with recurrent batch normalization and zoneout.

    Args:
        units: positive int.
        max_timesteps: steps with their own population statistics (longer sequences
            reuse the last step's); e.g. 784 for pixel-by-pixel MNIST.
        zoneout_cells: probability that a cell-state unit keeps its previous value, in [0, 1].
        zoneout_states: the same for the hidden state.
        share_mask: one draw for both masks (nested; identical for equal rates, the paper's best
            pMNIST model).
        zoneout_inference: "expectation" (rate * prev + (1 - rate) * new) or "deterministic" (new).
        gamma_init: initial scale of every normalization (0.1).
        momentum: of the population statistics' moving averages.
        return_sequences: return every step's output [B, T, H], not only the last [B, H].
        return_state: also return the final [h, c].
        seed: int or None, for the zoneout masks.
        jit_compile: "auto" (default; measured, see ``ZoneoutLSTM``), True (XLA) or False
            (graph mode, for exports that must run without XLA).

    Call arguments:
        sequences: [B, T, I]. initial_state: optional [h, c], each [B, H].
        training: bool; batch statistics and fresh masks when True.

    Raises:
        ValueError: ``units`` or ``max_timesteps`` not a positive integer, a rate or ``momentum``
            outside [0, 1], an unknown ``zoneout_inference`` or ``jit_compile``.
    """

    def __init__(
        self,
        units,
        max_timesteps=1000,
        zoneout_cells=0.0,
        zoneout_states=0.0,
        share_mask=False,
        zoneout_inference="expectation",
        gamma_init=0.1,
        momentum=0.99,
        return_sequences=False,
        return_state=False,
        seed=None,
        jit_compile="auto",
        **kwargs,
    ):
        super().__init__(**kwargs)
        self.jit_compile = kernel_choice.check_jit_compile(jit_compile)
        self.units = check_units(units)
        if isinstance(max_timesteps, bool) or not isinstance(max_timesteps, int) or max_timesteps <= 0:
            raise ValueError(f"`max_timesteps` must be a positive integer. Received: {max_timesteps!r}")
        self.max_timesteps = max_timesteps
        self.zoneout_cells = check_probability(zoneout_cells, "zoneout_cells")
        self.zoneout_states = check_probability(zoneout_states, "zoneout_states")
        self.share_mask = bool(share_mask)
        self.zoneout_inference = check_inference_mode(zoneout_inference)
        self.gamma_init = float(gamma_init)
        self.momentum = check_probability(momentum, "momentum")
        self.return_sequences = return_sequences
        self.return_state = return_state
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self.input_spec = keras.layers.InputSpec(ndim=3)

    def build(self, input_shape):
        features, gates = input_shape[-1], 4 * self.units
        add = self.add_weight
        self.kernel = add(shape=(features, gates), initializer="glorot_uniform", name="kernel")
        self.recurrent_kernel = add(
            shape=(self.units, gates), initializer="orthogonal", name="recurrent_kernel"
        )
        forget_one = keras.initializers.Constant(
            [0.0] * self.units + [1.0] * self.units + [0.0] * 2 * self.units
        )
        self.bias = add(shape=(gates,), initializer=forget_one, name="bias")
        gamma = keras.initializers.Constant(self.gamma_init)
        self.gamma_x = add(shape=(gates,), initializer=gamma, name="gamma_x")
        self.gamma_h = add(shape=(gates,), initializer=gamma, name="gamma_h")
        self.gamma_c = add(shape=(self.units,), initializer=gamma, name="gamma_c")
        self.beta_c = add(shape=(self.units,), initializer="zeros", name="beta_c")
        self.population = {}
        for name, size in (("x", gates), ("h", gates), ("c", self.units)):
            for stat, init in (("mean", "zeros"), ("variance", "ones")):
                # aggregation="mean": assignable from every replica (all assign the same value);
                # autocast=False: read in float32 under a mixed policy (statistics stay float32).
                self.population[f"{stat}_{name}"] = add(
                    shape=(self.max_timesteps, size),
                    initializer=init,
                    trainable=False,
                    autocast=False,
                    aggregation="mean",
                    name=f"{stat}_{name}",
                )

    def _population(self, name, steps, dtype):
        """Population statistics for steps 0..T-1, [T, size] of ``dtype`` (the last step reused beyond
        max_timesteps)."""
        index = tf.minimum(tf.range(steps), self.max_timesteps - 1)
        return tuple(
            tf.cast(tf.gather(self.population[f"{stat}_{name}"], index), dtype)
            for stat in ("mean", "variance")
        )

    def _update_population(self, name, mean, variance):
        """Move the first min(T, max_timesteps) steps' population statistics toward this batch's."""
        steps = tf.minimum(tf.shape(mean)[0], self.max_timesteps)
        for stat, batch_value in (("mean", mean), ("variance", variance)):
            variable = self.population[f"{stat}_{name}"]
            batch_value = tf.cast(batch_value, variable.dtype)
            head = variable[:steps] * self.momentum + batch_value[:steps] * (1.0 - self.momentum)
            variable.assign(tf.concat([head, variable[steps:]], 0))

    def call(self, sequences, initial_state=None, training=False, mask=None):
        if mask is not None:
            raise ValueError(
                "RecurrentBatchNormLSTM does not take a padding `mask` "
                "(its batch statistics would mix in the padding)."
            )
        training = bool(training)
        sequences = tf.convert_to_tensor(sequences)
        # Under a float16 policy the layer runs in float32: batch statistics (a variance of values
        # up to 65504 squared) and states in float16 would overflow or lose the small variances.
        compute_dtype = sequences.dtype
        x = tf.transpose(tf.cast(sequences, recurrence_dtype(compute_dtype)), [1, 0, 2])  # [T, B, I]
        steps, batch = tf.shape(x)[0], tf.shape(x)[1]
        dtype = x.dtype
        xw = tf.einsum("tbi,ig->tbg", x, tf.cast(self.kernel, dtype))
        if training:
            mean_x, var_x = tf.nn.moments(xw, axes=[1])  # per step: [T, 4H]
        else:
            mean_x, var_x = self._population("x", steps, dtype)
        gamma_x, bias = tf.cast(self.gamma_x, dtype), tf.cast(self.bias, dtype)
        xw = normalize(xw, mean_x[:, None], var_x[:, None], gamma_x) + bias
        if initial_state is None:
            zeros = tf.zeros([batch, self.units], dtype)
            initial_state = [zeros, zeros]
        h0, c0 = (tf.cast(s, dtype) for s in initial_state)
        keep_h, keep_c = keep_factors(
            (self.zoneout_states, self.zoneout_cells),
            training,
            self.seed_generator,
            tf.stack([batch, self.units]),
            steps,
            dtype=dtype,
            share_mask=self.share_mask,
            inference=self.zoneout_inference,
        )
        population = (
            None if training else self._population("h", steps, dtype) + self._population("c", steps, dtype)
        )
        args = (
            xw,
            tf.cast(self.recurrent_kernel, dtype),
            tf.cast(self.gamma_h, dtype),
            tf.cast(self.gamma_c, dtype),
            tf.cast(self.beta_c, dtype),
            h0,
            c0,
        )
        use_xla = self._use_xla(sequences, training, masked=False)
        outputs, h, c, stats = recurrence(args, (keep_h, keep_c), population, use_xla)
        if training:
            mean_h, var_h, mean_c, var_c = stats
            synced = replicas_statistics([(mean_x, var_x), (mean_h, var_h), (mean_c, var_c)])
            for name, (mean, variance) in zip("xhc", synced):
                self._update_population(name, mean, variance)
        output = tf.transpose(outputs, [1, 0, 2]) if self.return_sequences else h
        output, h, c = (tf.cast(t, compute_dtype) for t in (output, h, c))
        return (output, h, c) if self.return_state else output

    def compute_output_shape(self, input_shape):
        batch, steps = input_shape[0], input_shape[1]
        output = (batch, steps, self.units) if self.return_sequences else (batch, self.units)
        if self.return_state:
            return output, (batch, self.units), (batch, self.units)
        return output

    def get_config(self):
        return {
            **super().get_config(),
            "units": self.units,
            "max_timesteps": self.max_timesteps,
            "zoneout_cells": self.zoneout_cells,
            "zoneout_states": self.zoneout_states,
            "share_mask": self.share_mask,
            "zoneout_inference": self.zoneout_inference,
            "gamma_init": self.gamma_init,
            "momentum": self.momentum,
            "return_sequences": self.return_sequences,
            "return_state": self.return_state,
            "seed": self.seed,
            "jit_compile": self.jit_compile,
        }
