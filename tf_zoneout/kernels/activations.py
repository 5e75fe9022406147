"""Activations the hand-written BPTT knows, with derivatives written from the output."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import keras
import tensorflow as tf

# y = f(x); each entry gives f'(x) computed from y alone, so the forward pass
# only has to save activated values.
_DERIVATIVE_FROM_OUTPUT: dict[str, Callable] = {
    "tanh": lambda y: 1.0 - tf.square(y),
    "sigmoid": lambda y: y * (1.0 - y),
    "linear": lambda y: tf.ones_like(y),
    "relu": lambda y: tf.cast(y > 0, y.dtype),
}

_FORWARD: dict[str, Callable] = {
    "tanh": tf.tanh,
    "sigmoid": tf.sigmoid,
    "linear": tf.identity,
    "relu": tf.nn.relu,
}


@dataclasses.dataclass(frozen=True)
class Activation:
    """An activation function for the kernels; hashable, so it can key tf.function traces."""

    name: str
    fn: Callable

    @property
    def has_derivative(self) -> bool:
        return self.name in _DERIVATIVE_FROM_OUTPUT

    def __call__(self, x):
        return self.fn(x)

    def derivative(self, y):
        return _DERIVATIVE_FROM_OUTPUT[self.name](y)


def resolve(activation) -> Activation:
    """Wrap a Keras activation (name, function or None) for the kernels."""
    fn = keras.activations.get(activation)
    name = keras.activations.serialize(fn)
    if isinstance(name, dict):  # a custom function
        name = None
    if name in _FORWARD:
        return Activation(name, _FORWARD[name])
    return Activation(f"custom:{id(fn)}", fn)
