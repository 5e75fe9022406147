"""The batch-normalized LSTM's recurrence with zoneout: a fused forward loop and its hand-written BPTT.

The layer around it is ``tf_zoneout.batchnorm.RecurrentBatchNormLSTM``. Per step, with
statistics of that step (the batch's in training, the population's at inference)::

    (i, f, g, o) = BN(h_{t-1} U; gamma_h) + xw_t          (xw: the normalized input projection + b)
    c~_t = sigmoid(f) * c_{t-1} + sigmoid(i) * tanh(g)
    h~_t = sigmoid(o) * tanh(BN(c~_t; gamma_c, beta_c))

then zoneout mixes (c~_t, c_{t-1}) and (h~_t, h_{t-1}) with the keep factors, read per step by the
same ``KeepReader`` the other recurrences use (``kernels/scan.py``). ``forward`` is one
``tf.while_loop`` over TensorArrays; ``backward`` is a reverse loop through the saved per-step
batch statistics with dU as one matmul after it, tested against TensorFlow's autodiff of
``forward``. ``recurrence`` joins them as a ``tf.custom_gradient``, XLA-compiled or not.
"""

from __future__ import annotations

import functools

import tensorflow as tf

from tf_zoneout.kernels.scan import KeepReader, split_gradient
from tf_zoneout.zoneout import mix

EPSILON = 1e-5


def normalize(values, mean, variance, gamma, beta=None):
    """``(values - mean) / sqrt(variance + EPSILON) * gamma (+ beta)``.

    Args:
        values: [..., size] tensor.
        mean: its mean, broadcastable to ``values``.
        variance: its variance, broadcastable to ``values``.
        gamma: [size] scale.
        beta: [size] shift, or None.
    """
    out = (values - mean) * tf.math.rsqrt(variance + EPSILON) * gamma
    return out if beta is None else out + beta


def forward(xw, u, gamma_h, gamma_c, beta_c, h0, c0, keeps, population, save=False):
    """The batch-normalized LSTM recurrence with zoneout.

    Args:
        xw: [T, B, 4H] normalized input projection, bias included.
        u: [H, 4H] recurrent kernel.
        gamma_h: [4H] scale of the normalized recurrent projection.
        gamma_c: [H] scale of the normalized cell state.
        beta_c: [H] shift of the normalized cell state.
        h0: [B, H] initial hidden state.
        c0: [B, H] initial cell state.
        keeps: (keep_h, keep_c), each None, a scalar or [T, B, H] (``zoneout.keep_factors``).
        population: None (training: batch statistics) or (mean_h, var_h, mean_c, var_c),
            each [T, size].
        save: also return what ``backward`` needs.

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
    readers = [KeepReader(k, steps, s) for k, s in zip(keeps, (h0, c0))]
    if not training:
        population = [
            tf.TensorArray(dtype, size=steps, element_shape=p.shape[1:]).unstack(p) for p in population
        ]

    def standardized(values, t, which):
        """(values - mean) / std with this batch's statistics (training) or the population's
        of step t; returns (normalized values, mean, variance, 1/std)."""
        if training:
            mean, variance = tf.nn.moments(values, axes=[0])
        else:
            mean, variance = population[2 * which].read(t), population[2 * which + 1].read(t)
        rstd = tf.math.rsqrt(variance + EPSILON)
        return (values - mean) * rstd, mean, variance, rstd

    def body(t, h, c, outputs, stats, saved):
        rec_hat, mean_h, var_h, rstd_h = standardized(tf.matmul(h, u), t, 0)
        z_i, z_f, z_g, z_o = tf.split(xw_steps.read(t) + rec_hat * gamma_h, 4, axis=-1)
        i, f, g, o = tf.sigmoid(z_i), tf.sigmoid(z_f), tf.tanh(z_g), tf.sigmoid(z_o)
        c_new = f * c + i * g
        c_hat, mean_c, var_c, rstd_c = standardized(c_new, t, 1)
        act = tf.tanh(c_hat * gamma_c + beta_c)
        c_next = mix(readers[1].read(t), c, c_new)
        h_next = mix(readers[0].read(t), h, o * act)
        if training:  # the batch's statistics, for the population's moving averages
            stats = tuple(ta.write(t, v) for ta, v in zip(stats, (mean_h, var_h, mean_c, var_c)))
        if saved:  # only what a backward pass reads (an inference graph holds none of it)
            values = (tf.concat([i, f, g, o], -1), rec_hat, rstd_h, c_hat, rstd_c, act, c_next)
            saved = tuple(ta.write(t, v) for ta, v in zip(saved, values))
        return t + 1, h_next, c_next, outputs.write(t, h_next), stats, saved

    stats = tuple(tf.TensorArray(dtype, size=steps) for _ in range(4 if training else 0))
    saved = tuple(tf.TensorArray(dtype, size=steps) for _ in range(7 if save else 0))
    _, h, c, outputs, stats, saved = tf.while_loop(
        lambda t, *_: t < steps,
        body,
        (tf.constant(0), h0, c0, tf.TensorArray(dtype, size=steps, element_shape=h0.shape), stats, saved),
        maximum_iterations=steps,  # XLA's gradient of the loop needs its trip count bounded
    )
    stats = tuple(ta.stack() for ta in stats) if training else tuple(p.stack() for p in population)
    return outputs.stack(), h, c, stats, tuple(ta.stack() for ta in saved)


def batch_norm_backward(d_out, x_hat, rstd):
    """Gradient w.r.t. x of x_hat = (x - mean_b x) * rstd with batch statistics (biased
    variance), given d_out = dL/dx_hat: rstd * (d_out - mean(d_out) - x_hat * mean(d_out * x_hat)).

    Args:
        d_out: [B, size] gradient w.r.t. x_hat.
        x_hat: [B, size] the normalized values.
        rstd: [size] 1 / std of the batch.
    """
    return rstd * (d_out - tf.reduce_mean(d_out, 0) - x_hat * tf.reduce_mean(d_out * x_hat, 0))


def backward(u, gamma_h, gamma_c, h0, c0, h_seq, keeps, saved, d_h_seq, d_h, d_c):
    """Hand-written BPTT of ``forward`` in training (batch statistics).

    Args:
        u: [H, 4H], as given to ``forward``.
        gamma_h: [4H], as given to ``forward``.
        gamma_c: [H], as given to ``forward``.
        h0: [B, H], as given to ``forward``.
        c0: [B, H], as given to ``forward``.
        h_seq: [T, B, H], ``forward``'s output sequence.
        keeps: as given to ``forward``.
        saved: ``forward``'s saved values (``save=True``).
        d_h_seq: [T, B, H] gradient w.r.t. ``h_seq``.
        d_h: [B, H] gradient w.r.t. h_T.
        d_c: [B, H] gradient w.r.t. c_T.

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
    readers = [KeepReader(k, steps, s) for k, s in zip(keeps, (h0, c0))]

    def body(t, d_h, d_c, d_gamma_h, d_gamma_c, d_beta_c, d_z_ta, d_rec_ta):
        read = {name: array.read(t) for name, array in arrays.items()}
        d_h_new, d_h_kept = split_gradient(readers[0].read(t), d_h + read["d_h_seq"])
        d_c_new, d_c_kept = split_gradient(readers[1].read(t), d_c)
        i, f, g, o = tf.split(read["gates"], 4, axis=-1)
        act = read["act"]
        d_o = d_h_new * act
        d_n = d_h_new * o * (1.0 - act * act)
        d_gamma_c += tf.reduce_sum(d_n * read["c_hat"], 0)
        d_beta_c += tf.reduce_sum(d_n, 0)
        d_c_new += batch_norm_backward(d_n * gamma_c, read["c_hat"], read["rstd_c"])
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
        d_rec = batch_norm_backward(d_z * gamma_h, read["rec_hat"], read["rstd_h"])
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
        tf.function(forward, jit_compile=jit_compile, autograph=False),
        tf.function(backward, jit_compile=jit_compile, autograph=False),
    )


def recurrence(args, keeps, population, jit_compile: bool):
    """``forward`` differentiable w.r.t. ``args`` = (xw, u, gamma_h, gamma_c, beta_c, h0, c0).

    Args:
        args: (xw, u, gamma_h, gamma_c, beta_c, h0, c0), as ``forward`` takes them.
        keeps: (keep_h, keep_c), as ``forward`` takes them; no gradient.
        population: None (training) or the population statistics, as ``forward`` takes them.
        jit_compile: compile both loops with XLA (training; inference runs inline).

    Returns ``(h_seq, h_T, c_T, stats)``. Training (no population) uses the hand-written
    ``backward``; the statistics receive no gradient (they only feed the moving averages).
    """
    compiled_forward, compiled_backward = _compiled(jit_compile)
    if population is not None:  # inference: inline in the caller's graph (exports, converters)
        return forward(*args, keeps, population)[:4]

    @tf.custom_gradient
    def differentiable(*args):
        # stop_gradient: TensorFlow must not build its own gradient of the compiled loop.
        args = tuple(tf.stop_gradient(a) for a in args)
        h_seq, h, c, stats, saved = compiled_forward(*args, keeps, None, save=True)

        def grad(d_h_seq, d_h, d_c, *_):
            d_h_seq, d_h, d_c = (
                tf.zeros_like(ref) if d is None else d for d, ref in ((d_h_seq, h_seq), (d_h, h), (d_c, c))
            )
            _, u, gamma_h, gamma_c, _, h0, c0 = args
            return compiled_backward(u, gamma_h, gamma_c, h0, c0, h_seq, keeps, saved, d_h_seq, d_h, d_c)

        return (h_seq, h, c, *(tf.stop_gradient(x) for x in stats)), grad

    h_seq, h, c, *stats = differentiable(*args)
    return h_seq, h, c, tuple(stats)
