"""Zoneout for any Keras RNN cell: ``ZoneoutWrapper(cell, zoneout=...)``."""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_zoneout.zoneout import check_inference_mode, check_probability, keep_factors, mix


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutWrapper(keras.layers.Layer):
    """Zoneout on the states of any Keras RNN cell (LSTMCell, GRUCell, ConvLSTM2DCell, a member of
    ``StackedRNNCells``, a cell of your own): each unit of each state keeps its previous value with
    probability z at each step instead of taking the cell's new value.

    The wrapped cell computes its step as usual; the wrapper mixes every state tensor with its previous
    value, ``s_t = d * s_{t-1} + (1 - d) * s~_t`` with ``d ~ Bernoulli(z)`` in training and
    ``s_t = z * s_{t-1} + (1 - z) * s~_t`` at inference ("expectation") or ``s~_t`` ("deterministic").
    When the cell returns its first state as its output (every Keras cell does: h), the output is the
    zoned-out state too, the tensor the next step reads. Wrapping ``keras.layers.LSTMCell`` with
    ``zoneout=[z_h, z_c]`` computes exactly ``ZoneoutLSTMCell(zoneout_states=z_h, zoneout_cells=z_c)``
    with the same weights and seed (the same masks). For speed on whole sequences prefer the fused
    layers (``ZoneoutLSTM``, ``ZoneoutGRU``, ``ZoneoutSimpleRNN``).

    Args:
        cell: a Keras RNN cell (``call(inputs, states, training)`` -> ``(output, new_states)`` and
            ``state_size``).
        zoneout: keep probability in [0, 1] for every state, or a list with one per state tensor in
            the cell's (flattened) state order, e.g. ``[z_h, z_c]`` for ``LSTMCell``.
        zoneout_inference: "expectation" (default, the paper's) or "deterministic".
        seed: int seed of the masks (None: a random one); same seed, same masks.

    Raises:
        ValueError: ``cell`` is not an RNN cell, a rate is outside [0, 1], the number of rates
            does not match the cell's states, or ``zoneout_inference`` is unknown.

    Call arguments:
        inputs: one step's input, e.g. [B, I]. states: the cell's states. training: bool.

    Example:
        >>> cell = tz.ZoneoutWrapper(keras.layers.GRUCell(16), zoneout=0.1, seed=1)
        >>> keras.layers.RNN(cell)(np.zeros([2, 5, 3], "float32"), training=True).shape
        TensorShape([2, 16])
    """

    def __init__(self, cell, zoneout=0.0, zoneout_inference="expectation", seed=None, **kwargs):
        super().__init__(**kwargs)
        if not hasattr(cell, "state_size") or not callable(getattr(cell, "call", None)):
            raise ValueError(
                f"ZoneoutWrapper wraps a Keras RNN cell (with `state_size` and `call(inputs, states)`); "
                f"received {type(cell).__name__}"
            )
        self.cell = cell
        num_states = _declared_num_states(cell.state_size)
        if isinstance(zoneout, list | tuple):
            rates = tuple(check_probability(z, "zoneout") for z in zoneout)
            _check_rate_count(rates, num_states, cell)
        else:
            rates = check_probability(zoneout, "zoneout")  # one rate for every state
        self.zoneout_rates = rates
        self.zoneout_inference = check_inference_mode(zoneout_inference)
        self.seed = seed
        self.seed_generator = keras.random.SeedGenerator(seed)
        self._zoneout_spec = zoneout if isinstance(zoneout, int | float) else list(zoneout)

    @property
    def state_size(self):
        return self.cell.state_size

    @property
    def output_size(self):
        return getattr(self.cell, "output_size", None)

    def get_initial_state(self, batch_size=None):
        """The cell's own initial state, or zeros of its ``state_size`` (as keras.layers.RNN makes)."""
        if hasattr(self.cell, "get_initial_state"):
            return self.cell.get_initial_state(batch_size=batch_size)
        sizes = self.cell.state_size if isinstance(self.cell.state_size, list) else [self.cell.state_size]
        return [
            tf.zeros([batch_size, *(size if isinstance(size, list | tuple) else [size])], self.compute_dtype)
            for size in sizes
        ]

    def build(self, input_shape):
        if not self.cell.built:
            self.cell.build(input_shape)
        self.built = True

    def rates_for(self, num_states: int) -> tuple[float, ...]:
        """One keep probability per state tensor."""
        if isinstance(self.zoneout_rates, tuple):
            _check_rate_count(self.zoneout_rates, num_states, self.cell)
            return self.zoneout_rates
        return (self.zoneout_rates,) * num_states

    def _keeps(self, states, training):
        """One keep factor per flat state: pairs of same-shaped states share one hash, as the fused
        layers and ``ZoneoutLSTMCell`` draw them."""
        shapes = [tf.shape(s) for s in states]
        same_shape = len(states) == 2 and states[0].shape == states[1].shape
        groups = [list(range(len(states)))] if same_shape else [[i] for i in range(len(states))]
        keeps = [None] * len(states)
        rates = self.rates_for(len(states))
        for group in groups:
            factors = keep_factors(
                [rates[i] for i in group],
                training,
                self.seed_generator,
                shapes[group[0]],
                dtype=states[group[0]].dtype,
                inference=self.zoneout_inference,
            )
            for i, keep in zip(group, factors):
                keeps[i] = keep
        return keeps

    def call(self, inputs, states, training=False):
        output, new_states = self.cell(inputs, states, training=training)
        previous, candidates = tf.nest.flatten(states), tf.nest.flatten(new_states)
        keeps = self._keeps(candidates, training)
        zoned = [mix(k, p, c) for k, p, c in zip(keeps, previous, candidates)]
        if output is candidates[0]:
            output = zoned[0]
        return output, tf.nest.pack_sequence_as(new_states, zoned)

    def get_config(self):
        return {
            **super().get_config(),
            "cell": keras.saving.serialize_keras_object(self.cell),
            "zoneout": self._zoneout_spec,
            "zoneout_inference": self.zoneout_inference,
            "seed": self.seed,
        }

    @classmethod
    def from_config(cls, config):
        config = dict(config)
        config["cell"] = keras.saving.deserialize_keras_object(config["cell"])
        return cls(**config)


def _declared_num_states(state_size) -> int | None:
    """How many state tensors a cell declares: a list holds one entry per state, a single int or
    shape is one state; None when the cell decides at call time (e.g. ConvLSTM's -1)."""
    if isinstance(state_size, list):
        return len(state_size)
    if isinstance(state_size, int):
        return 1 if state_size >= 0 else None
    return 1


def _check_rate_count(rates: tuple, num_states: int | None, cell) -> None:
    if num_states is not None and len(rates) != num_states:
        raise ValueError(
            f"`zoneout` lists {len(rates)} rates but {type(cell).__name__} has {num_states} state "
            f"tensor(s): give one rate per state (in state order) or a single float"
        )
