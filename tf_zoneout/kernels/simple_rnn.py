"""One simple (tanh) RNN step and its backward pass."""

from __future__ import annotations

import dataclasses

from tf_zoneout.kernels.activations import Activation


@dataclasses.dataclass(frozen=True)
class SimpleRNNStep:
    """h~_t = act(x_t W + b + h_{t-1} U); the state is (h,); saves h~_t [B, H]."""

    activation: Activation
    num_saved = 1
    distinct_rec_grad = False

    @property
    def has_backward(self) -> bool:
        return self.activation.has_derivative

    def forward(self, xw_t, rec_t, state, update=None):
        # Input-gate dropout does not apply to this cell (the layer rejects it).
        h_new = self.activation(xw_t + rec_t)
        return (h_new,), (h_new,)

    def backward(self, d_candidates, saved, prev, update=None):
        (d_h,) = d_candidates
        (h_new,) = saved
        d_a = d_h * self.activation.derivative(h_new)
        return (None,), d_a, d_a
