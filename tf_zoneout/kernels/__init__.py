"""Fused zoneout recurrences: a generic time loop (scan) and per-cell step math."""

from tf_zoneout.kernels.activations import Activation, resolve
from tf_zoneout.kernels.gru import GRUStep
from tf_zoneout.kernels.lstm import LSTMStep
from tf_zoneout.kernels.scan import advance, run
from tf_zoneout.kernels.simple_rnn import SimpleRNNStep

__all__ = ["Activation", "GRUStep", "LSTMStep", "SimpleRNNStep", "advance", "resolve", "run"]
