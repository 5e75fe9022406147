"""One LSTM step (Keras gate order i, f, c, o) and its backward pass."""

from __future__ import annotations

import dataclasses

import tensorflow as tf

from tf_zoneout.kernels.activations import Activation


@dataclasses.dataclass(frozen=True)
class LSTMStep:
    """LSTM math for ``scan.forward``/``scan.backward``; states are (h, c), plus o' with
    ``output_gate_zoneout``.

    c~_t = f * c_{t-1} + d * i * g,  h~_t = o * act(c~_t)  (h~ uses the un-zoned c~_t,
    paper sec. 3.2); d is the input-gate dropout factor (Semeniuta et al., 2016), 1
    when unused. With ``output_gate_zoneout`` the same d zones out the output gate:
    o'_t = d * o_t + (1 - d) * o'_{t-1} and h~_t = o'_t * act(c~_t), so a unit whose
    update was dropped keeps the gate it had (paper, sec. 3.2).
    Saved per step: the activated gates [B, 4H], act(c~_t) [B, H] (and o'_t).
    """

    activation: Activation
    recurrent_activation: Activation
    output_gate_zoneout: bool = False
    distinct_rec_grad = False

    @property
    def num_saved(self) -> int:
        return 3 if self.output_gate_zoneout else 2

    @property
    def has_backward(self) -> bool:
        return self.activation.has_derivative and self.recurrent_activation.has_derivative

    def forward(self, xw_t, rec_t, state, update=None):
        c_prev = state[1]
        z_i, z_f, z_g, z_o = tf.split(xw_t + rec_t, 4, axis=-1)
        i = self.recurrent_activation(z_i)
        f = self.recurrent_activation(z_f)
        g = self.activation(z_g)
        o = self.recurrent_activation(z_o)
        c_new = f * c_prev + (i * g if update is None else update * i * g)
        act_c = self.activation(c_new)
        gates = tf.concat([i, f, g, o], -1)
        if not self.output_gate_zoneout:
            return (o * act_c, c_new), (gates, act_c)
        o_kept = o if update is None else state[2] + update * (o - state[2])
        return (o_kept * act_c, c_new, o_kept), (gates, act_c, o_kept)

    def backward(self, d_candidates, saved, prev, update=None):
        d_h, d_c = d_candidates[:2]
        gates, act_c = saved[:2]
        c_prev = prev[1]
        i, f, g, o = tf.split(gates, 4, axis=-1)
        o_used = saved[2] if self.output_gate_zoneout else o
        d_c = d_c + d_h * o_used * self.activation.derivative(act_c)
        d_o = d_h * act_c
        d_prev_o = None
        if self.output_gate_zoneout:
            d_o = d_o + d_candidates[2]  # o'_t also feeds o'_{t+1}
            if update is not None:
                d_o, d_prev_o = d_o * update, d_o * (1.0 - update)
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
        d_prev = (None, d_c * f) + ((d_prev_o,) if self.output_gate_zoneout else ())
        return d_prev, d_z, d_z
