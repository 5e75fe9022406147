"""Recurrent batch normalization (Cooijmans et al., ICLR 2017) for the LSTM, with zoneout.

    (i, f, o, g) = BN(h_{t-1} U; gamma_h) + BN(x_t W; gamma_x) + b
    c~_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h~_t = sigmoid(o) * tanh(BN(c~_t; gamma_c, beta_c))

Each BN uses statistics of its own time step: batch statistics in training, and
population statistics (moving averages kept per step) at inference; steps beyond
``max_timesteps`` reuse the last step's statistics. gamma starts at 0.1 (the paper's
advice, which keeps tanh/sigmoid out of saturation), beta at 0. Gates are in Keras's
order (i, f, c, o). Zoneout is applied to c~ and h~ exactly as in ``ZoneoutLSTM``.

The loop is one ``tf.while_loop`` over TensorArrays with the input projection and
its normalization hoisted out of it. Its backward pass is written by hand (``_backward``:
a reverse loop through the per-step batch statistics, dU as one matmul after it) and
tested against TensorFlow's autodiff of the same loop; with ``jit_compile`` both loops are
XLA computations. ``jit_compile="auto"`` picks XLA or graph mode by measuring, as the
zoneout layers do (``tf_zoneout.kernel_choice``).
"""

from __future__ import annotations

import functools

import keras
import tensorflow as tf

from tf_zoneout import kernel_choice
from tf_zoneout.cells import check_units
from tf_zoneout.kernels.scan import split_gradient
from tf_zoneout.zoneout import check_inference_mode, check_probability, keep_factors, mix

EPSILON = 1e-5


def _normalize(values, mean, variance, gamma, beta=None):
    out = (values - mean) * tf.math.rsqrt(variance + EPSILON) * gamma
    return out if beta is None else out + beta


def _loop(xw, u, gamma_h, gamma_c, beta_c, h0, c0, keeps, population, save=False):
    """The batch-normalized LSTM recurrence with zoneout.

    Args:
        xw: [T, B, 4H] normalized input projection, bias included.
        u: [H, 4H] recurrent kernel; gamma_h [4H], gamma_c [H], beta_c [H].
        h0, c0: [B, H] initial states.
        keeps: (keep_h, keep_c), each None, a scalar or [T, B, H] (``zoneout.keep_factors``).
        population: None (training: batch statistics) or (mean_h, var_h, mean_c, var_c),
            each [T, size].
        save: also return what ``_backward`` needs.

    Returns:
        ``(h_seq [T, B, H], h_T, c_T, (mean_h, var_h, mean_c, var_c), saved)``: the
        statistics used at each step, each [T, size]; ``saved`` is () unless ``save``, else
        per-step (gates [T, B, 4H] (activated i, f, g, o), normalized h U [T, B, 4H], its
        1/std [T, 4H], normalized c~ [T, B, H], its 1/std [T, H], tanh(BN(c~)) [T, B, H],
        c_t [T, B, H]).
    """
    steps = tf.shape(xw)[0]
    dtype = xw.dtype
    training = population is None
    xw_steps = tf.TensorArray(dtype, size=steps).unstack(xw)
    # Per-step tensors go through TensorArrays: slicing a captured tensor inside the
    # loop measured 2.1x slower (2-core CPUs, H=256).
    keep_arrays = [
        tf.TensorArray(k.dtype, size=steps).unstack(k) if k is not None and k.shape.rank == 3 else None
        for k in keeps
    ]

    def keep_at(i, t):
        return keep_arrays[i].read(t) if keep_arrays[i] is not None else keeps[i]

    def standardized(values, t, which):
        """(values - mean) / std with this batch's statistics (training) or the population's
        of step t; returns (normalized values, mean, variance, 1/std)."""
        if training:
            mean, variance = tf.nn.moments(values, axes=[0])
        else:
            mean, variance = population[2 * which][t], population[2 * which + 1][t]
        rstd = tf.math.rsqrt(variance + EPSILON)
        return (values - mean) * rstd, mean, variance, rstd

    def body(t, h, c, outputs, stats, saved):
        rec_hat, mean_h, var_h, rstd_h = standardized(tf.matmul(h, u), t, 0)
        z_i, z_f, z_g, z_o = tf.split(xw_steps.read(t) + rec_hat * gamma_h, 4, axis=-1)
        i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
        c_new = f * c + i * g
        c_hat, mean_c, var_c, rstd_c = standardized(c_new, t, 1)
        act = tf.tanh(c_hat * gamma_c + beta_c)
        c_next = mix(keep_at(1, t), c, c_new)
        h_next = mix(keep_at(0, t), h, o * act)
        stats = tuple(ta.write(t, v) for ta, v in zip(stats, (mean_h, var_h, mean_c, var_c)))
        values = (tf.concat([i, f, g, o], -1), rec_hat, rstd_h, c_hat, rstd_c, act, c_next)
        saved = tuple(ta.write(t, v) for ta, v in zip(saved, values))
        return t + 1, h_next, c_next, outputs.write(t, h_next), stats, saved

    stats = tuple(tf.TensorArray(dtype, size=steps) for _ in range(4))
    saved = tuple(tf.TensorArray(dtype, size=steps) for _ in range(7 if save else 0))
    _, h, c, outputs, stats, saved = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, c0, tf.TensorArray(dtype, size=steps), stats, saved),
        maximum_iterations=steps,  # XLA's gradient of the loop needs its trip count bounded
    )
    return outputs.stack(), h, c, tuple(ta.stack() for ta in stats), tuple(ta.stack() for ta in saved)


def _batch_norm_backward(d_out, x_hat, rstd):
    """Gradient w.r.t. x of x_hat = (x - mean_b x) * rstd with batch statistics (biased
    variance), given d_out = dL/dx_hat: rstd * (d_out - mean(d_out) - x_hat * mean(d_out * x_hat))."""
    return rstd * (d_out - tf.reduce_mean(d_out, 0) - x_hat * tf.reduce_mean(d_out * x_hat, 0))


def _backward(u, gamma_h, gamma_c, h0, c0, h_seq, keeps, saved, d_h_seq, d_h, d_c):
    """Hand-written BPTT of ``_loop`` in training (batch statistics).

    Args:
        u, gamma_h, gamma_c, h0, c0, keeps: as given to ``_loop``.
        h_seq, saved: ``_loop``'s outputs (``save=True``).
        d_h_seq [T, B, H], d_h [B, H], d_c [B, H]: gradients of the outputs.

    Returns:
        Gradients w.r.t. (xw, u, gamma_h, gamma_c, beta_c, h0, c0).
    """
    gates, rec_hat, rstd_h, c_hat, rstd_c, act, c_seq = saved
    steps = tf.shape(h_seq)[0]
    prev_h = tf.concat([h0[None], h_seq[:-1]], 0)
    prev_c = tf.concat([c0[None], c_seq[:-1]], 0)
    arrays = {
        name: tf.TensorArray(value.dtype, size=steps).unstack(value)
        for name, value in (
            ("d_h_seq", d_h_seq), ("gates", gates), ("rec_hat", rec_hat), ("rstd_h", rstd_h),
            ("c_hat", c_hat), ("rstd_c", rstd_c), ("act", act), ("prev_c", prev_c),
        )
    }  # fmt: skip
    keep_arrays = [
        tf.TensorArray(k.dtype, size=steps).unstack(k) if k is not None and k.shape.rank == 3 else None
        for k in keeps
    ]

    def keep_at(i, t):
        return keep_arrays[i].read(t) if keep_arrays[i] is not None else keeps[i]

    def body(t, d_h, d_c, d_gamma_h, d_gamma_c, d_beta_c, d_z_ta, d_rec_ta):
        read = {name: array.read(t) for name, array in arrays.items()}
        d_h_new, d_h_kept = split_gradient(keep_at(0, t), d_h + read["d_h_seq"])
        d_c_new, d_c_kept = split_gradient(keep_at(1, t), d_c)
        i, f, g, o = tf.split(read["gates"], 4, axis=-1)
        act = read["act"]
        d_o = d_h_new * act
        d_n = d_h_new * o * (1.0 - act * act)
        d_gamma_c += tf.reduce_sum(d_n * read["c_hat"], 0)
        d_beta_c += tf.reduce_sum(d_n, 0)
        d_c_new += _batch_norm_backward(d_n * gamma_c, read["c_hat"], read["rstd_c"])
        d_z = tf.concat(
            [
                d_c_new * g * i * (1.0 - i),
                d_c_new * read["prev_c"] * f * (1.0 - f),
                d_c_new * i * (1.0 - g * g),
                d_o * o * (1.0 - o),
            ],
            -1,
        )
        d_gamma_h += tf.reduce_sum(d_z * read["rec_hat"], 0)
        d_rec = _batch_norm_backward(d_z * gamma_h, read["rec_hat"], read["rstd_h"])
        d_h_prev = tf.matmul(d_rec, u, transpose_b=True)
        d_c_prev = d_c_new * f
        if d_h_kept is not None:
            d_h_prev += d_h_kept
        if d_c_kept is not None:
            d_c_prev += d_c_kept
        return (
            t - 1, d_h_prev, d_c_prev, d_gamma_h, d_gamma_c, d_beta_c,
            d_z_ta.write(t, d_z), d_rec_ta.write(t, d_rec),
        )  # fmt: skip

    dtype = h_seq.dtype
    hidden, gates_width = u.shape[0], u.shape[1]
    zeros = (tf.zeros([gates_width], dtype), tf.zeros([hidden], dtype), tf.zeros([hidden], dtype))
    arrays_out = (tf.TensorArray(dtype, size=steps), tf.TensorArray(dtype, size=steps))
    _, d_h0, d_c0, d_gamma_h, d_gamma_c, d_beta_c, d_z_ta, d_rec_ta = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (steps - 1, d_h, d_c, *zeros, *arrays_out),
        maximum_iterations=steps,
    )
    d_rec = d_rec_ta.stack()
    d_u = tf.matmul(tf.reshape(prev_h, [-1, hidden]), tf.reshape(d_rec, [-1, gates_width]), transpose_a=True)
    return d_z_ta.stack(), d_u, d_gamma_h, d_gamma_c, d_beta_c, d_h0, d_c0


@functools.cache
def _compiled(jit_compile: bool):
    """(forward, backward) tf.functions, XLA-compiled or not."""
    return (
        tf.function(_loop, jit_compile=jit_compile, autograph=False),
        tf.function(_backward, jit_compile=jit_compile, autograph=False),
    )


def _recurrence(args, keeps, population, jit_compile: bool):
    """``_loop`` differentiable w.r.t. ``args`` = (xw, u, gamma_h, gamma_c, beta_c, h0, c0).

    Returns ``(h_seq, h_T, c_T, stats)``. Training (no population) uses the hand-written
    ``_backward``; the statistics receive no gradient (they only feed the moving averages).
    """
    forward, backward = _compiled(jit_compile)
    if population is not None:
        return forward(*args, keeps, population)[:4]

    @tf.custom_gradient
    def recurrence(*args):
        # stop_gradient: TensorFlow must not build its own gradient of the compiled loop.
        args = tuple(tf.stop_gradient(a) for a in args)
        h_seq, h, c, stats, saved = forward(*args, keeps, None, save=True)

        def grad(d_h_seq, d_h, d_c, *_):
            d_h_seq, d_h, d_c = (
                tf.zeros_like(ref) if d is None else d for d, ref in ((d_h_seq, h_seq), (d_h, h), (d_c, c))
            )
            _, u, gamma_h, gamma_c, _, h0, c0 = args
            return backward(u, gamma_h, gamma_c, h0, c0, h_seq, keeps, saved, d_h_seq, d_h, d_c)

        return (h_seq, h, c, *(tf.stop_gradient(x) for x in stats)), grad

    h_seq, h, c, *stats = recurrence(*args)
    return h_seq, h, c, tuple(stats)


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
                self.population[f"{stat}_{name}"] = add(
                    shape=(self.max_timesteps, size), initializer=init, trainable=False, name=f"{stat}_{name}"
                )

    def _population(self, name, steps):
        """Population statistics for steps 0..T-1, [T, size] (the last step reused beyond max_timesteps)."""
        index = tf.minimum(tf.range(steps), self.max_timesteps - 1)
        return (
            tf.gather(self.population[f"mean_{name}"], index),
            tf.gather(self.population[f"variance_{name}"], index),
        )

    def _update_population(self, name, mean, variance):
        """Move the first min(T, max_timesteps) steps' population statistics toward this batch's."""
        steps = tf.minimum(tf.shape(mean)[0], self.max_timesteps)
        for stat, batch_value in (("mean", mean), ("variance", variance)):
            variable = self.population[f"{stat}_{name}"]
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
        x = tf.transpose(sequences, [1, 0, 2])  # [T, B, I]
        steps, batch = tf.shape(x)[0], tf.shape(x)[1]
        dtype = x.dtype
        xw = tf.einsum("tbi,ig->tbg", x, tf.cast(self.kernel, dtype))
        if training:
            mean_x, var_x = tf.nn.moments(xw, axes=[1])  # per step: [T, 4H]
        else:
            mean_x, var_x = self._population("x", steps)
        xw = _normalize(xw, mean_x[:, None], var_x[:, None], self.gamma_x) + self.bias
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
        population = None if training else self._population("h", steps) + self._population("c", steps)
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
        outputs, h, c, stats = _recurrence(args, (keep_h, keep_c), population, use_xla)
        if training:
            mean_h, var_h, mean_c, var_c = stats
            self._update_population("x", mean_x, var_x)
            self._update_population("h", mean_h, var_h)
            self._update_population("c", mean_c, var_c)
        output = tf.transpose(outputs, [1, 0, 2]) if self.return_sequences else h
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
