"""One GRU step (Keras layout, reset_after=True, gate order z, r, h) and its backward pass."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_zoneout.kernels.activations import Activation


@dataclasses.dataclass(frozen=True)
class GRUStep:
    """GRU math for ``scan.forward``/``scan.backward``; the state is (h,).

    z = rec_act(x_z + r_z), r = rec_act(x_r + r_r), n = act(x_h + r * r_h),
    h~ = z * h_{t-1} + (1 - z) * d * n, where r_* = h_{t-1} U_* + b_rec_* and d is the
    input-gate dropout factor on the candidate (Semeniuta et al., 2016), 1 when unused.
    Saved per step: z, r, n and r_h, each [B, H].
    """

    activation: Activation
    recurrent_activation: Activation
    num_saved = 4
    distinct_rec_grad = True

    @property
    def has_backward(self) -> bool:
        return self.activation.has_derivative and self.recurrent_activation.has_derivative

    def forward(self, xw_t, rec_t, state, update=None):
        (h_prev,) = state
        x_z, x_r, x_h = tf.split(xw_t, 3, axis=-1)
        r_z, r_r, r_h = tf.split(rec_t, 3, axis=-1)
        z = self.recurrent_activation(x_z + r_z)
        r = self.recurrent_activation(x_r + r_r)
        n = self.activation(x_h + r * r_h)
        new = n if update is None else update * n
        h_new = new + z * (h_prev - new)
        return (h_new,), (z, r, n, r_h)

    def backward(self, d_candidates, saved, prev, update=None):
        (d_h,) = d_candidates
        z, r, n, r_h = saved
        (h_prev,) = prev
        sig_d = self.recurrent_activation.derivative
        new = n if update is None else update * n
        d_new = d_h * (1.0 - z) if update is None else d_h * (1.0 - z) * update
        d_a_z = d_h * (h_prev - new) * sig_d(z)
        d_a_h = d_new * self.activation.derivative(n)
        d_a_r = d_a_h * r_h * sig_d(r)
        d_xw = tf.concat([d_a_z, d_a_r, d_a_h], -1)
        d_rec = tf.concat([d_a_z, d_a_r, d_a_h * r], -1)
        return (d_h * z,), d_xw, d_rec
