"""One LSTM step (Keras gate order i, f, c, o) and its backward pass."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_zoneout.kernels.activations import Activation


@dataclasses.dataclass(frozen=True)
class LSTMStep:
    """LSTM math for ``scan.forward``/``scan.backward``; states are (h, c).

    c~_t = f * c_{t-1} + d * i * g,  h~_t = o * act(c~_t)  (h~ uses the un-zoned c~_t,
    paper sec. 3.2); d is the input-gate dropout factor (Semeniuta et al., 2016), 1
    when unused. Saved per step: the activated gates [B, 4H] and act(c~_t) [B, H].
    """

    activation: Activation
    recurrent_activation: Activation
    num_saved = 2
    distinct_rec_grad = False

    @property
    def has_backward(self) -> bool:
        return self.activation.has_derivative and self.recurrent_activation.has_derivative

    def forward(self, xw_t, rec_t, state, update=None):
        _, c_prev = state
        z_i, z_f, z_g, z_o = tf.split(xw_t + rec_t, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_g)
        o = self.recurrent_activation(z_o)
        c_new = f * c_prev + (i * g if update is None else update * i * g)
        act_c = self.activation(c_new)
        h_new = o * act_c
        return (h_new, c_new), (tf.concat([i, f, g, o], -1), act_c)

    def backward(self, d_candidates, saved, prev, update=None):
        d_h, d_c = d_candidates
        gates, act_c = saved
        _, c_prev = prev
        i, f, g, o = tf.split(gates, 4, axis=-1)
        d_c = d_c + d_h * o * self.activation.derivative(act_c)
        d_o = d_h * act_c
        d_update = d_c if update is None else d_c * update  # gradient reaching i * g
        sig_d = self.recurrent_activation.derivative
        d_z = tf.concat(
            [
                d_update * g * sig_d(i),
                d_c * c_prev * sig_d(f),
                d_update * i * self.activation.derivative(g),
                d_o * sig_d(o),
            ],
            -1,
        )
        return (None, d_c * f), d_z, d_z
