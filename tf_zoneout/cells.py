"""Per-step zoneout cells, drop-in replacements for Keras's LSTM, GRU and SimpleRNN cells.

A cell computes one step; ``keras.layers.RNN(cell)`` unrolls it. The cells are the
readable reference; the sequence layers in ``layers.py`` are the fast path.
"""

from __future__ import annotations

import keras
import tensorflow as tf

from tf_zoneout.zoneout import check_inference_mode, check_probability, keep_factors, mix


def check_units(units) -> int:
    """Return ``units`` if it is a positive int.

    Args:
        units: the layer's or cell's number of units.

    Raises:
        ValueError: anything else (a bool, a float, 0 or less).
    """
    if isinstance(units, bool) or not isinstance(units, int) or units <= 0:
        raise ValueError(f"`units` must be a positive integer. Received: units={units!r}")
    return units


class ZoneoutCellMixin:
    """Zoneout on a Keras cell's states: ``s_t = d * s_{t-1} + (1 - d) * s~_t``.

    Subclasses set ``self.zoneout_rates`` (one keep probability per state, in the
    cell's state order) and call ``_zoneout_states`` after the Keras step.
    """

    def _init_zoneout(self, rates: dict, share_mask: bool, zoneout_inference: str):
        self._zoneout_names = tuple(rates)
        self.zoneout_rates = tuple(check_probability(v, k) for k, v in rates.items())
        if share_mask and len(rates) < 2:
            raise ValueError("`share_mask` only applies to cells with two states (LSTM).")
        self.share_mask = bool(share_mask)
        self.zoneout_inference = check_inference_mode(zoneout_inference)

    def _zoneout_states(self, candidates, prev, training):
        """Mix candidate states [B, H] with previous ones; fresh masks each call."""
        keeps = keep_factors(
            self.zoneout_rates,
            training,
            self.seed_generator,
            tf.shape(candidates[0]),
            dtype=candidates[0].dtype,
            share_mask=self.share_mask,
            inference=self.zoneout_inference,
        )
        return [mix(k, p, c) for c, p, k in zip(candidates, prev, keeps)]

    def get_config(self):
        return {**super().get_config(), **self._zoneout_config()}

    def _zoneout_config(self) -> dict:
        config = dict(zip(self._zoneout_names, self.zoneout_rates))
        config["zoneout_inference"] = self.zoneout_inference
        if len(self._zoneout_names) > 1:
            config["share_mask"] = self.share_mask
        return config


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutLSTMCell(ZoneoutCellMixin, keras.layers.LSTMCell):
    """LSTM cell with zoneout on the cell (c) and hidden (h) states.

    Same weights as ``keras.layers.LSTMCell``; with both rates 0 it is that cell.
    The step's output is the zoned-out h_t, the tensor fed to the next step, and
    h~_t = o_t * tanh(c~_t) uses the un-zoned c~_t (paper, sec. 3.2).

    Args:
        units: positive int, size of h and c.
        zoneout_cells: probability in [0, 1] of KEEPING each c unit's previous value.
        zoneout_states: probability in [0, 1] of KEEPING each h unit's previous value.
        share_mask: draw one uniform per unit for both masks (identical masks when
            the two rates are equal, as in the paper's batch-norm pMNIST model).
        zoneout_inference: "expectation" (s = z s_prev + (1 - z) s~, the paper's
            choice) or "deterministic" (s = s~).
        **kwargs: any ``keras.layers.LSTMCell`` argument (``seed`` seeds the masks).

    Raises:
        ValueError: ``units`` not a positive integer, a rate outside [0, 1], or an unknown
            ``zoneout_inference``.

    Call arguments:
        inputs: [B, I]. states: ``[h, c]``, each [B, H]. training: bool.

    Example:
        >>> layer = keras.layers.RNN(tz.ZoneoutLSTMCell(8, zoneout_cells=0.5))
        >>> layer(np.zeros([2, 5, 3], "float32")).shape
        TensorShape([2, 8])
    """

    def __init__(
        self,
        units,
        zoneout_cells=0.0,
        zoneout_states=0.0,
        share_mask=False,
        zoneout_inference="expectation",
        **kwargs,
    ):
        super().__init__(check_units(units), **kwargs)
        self._init_zoneout(
            {"zoneout_cells": zoneout_cells, "zoneout_states": zoneout_states},
            share_mask,
            zoneout_inference,
        )
        # Keras's state order is [h, c]; zoneout rates follow it.
        self.zoneout_rates = self.zoneout_rates[::-1]
        self._zoneout_names = self._zoneout_names[::-1]

    def call(self, inputs, states, training=False):
        _, (h_new, c_new) = super().call(inputs, states, training=training)
        h, c = self._zoneout_states([h_new, c_new], list(states), training)
        return h, [h, c]


class SingleStateZoneoutMixin(ZoneoutCellMixin):
    """Constructor and step shared by the one-state cells (GRU, SimpleRNN): zoneout on h."""

    def __init__(self, units, zoneout=0.0, zoneout_inference="expectation", **kwargs):
        super().__init__(check_units(units), **kwargs)
        self._init_zoneout({"zoneout": zoneout}, False, zoneout_inference)

    def call(self, inputs, states, training=False):
        nested = tf.nest.is_nested(states)
        prev = states[0] if nested else states
        h_new, _ = super().call(inputs, states, training=training)
        (h,) = self._zoneout_states([h_new], [prev], training)
        return h, ([h] if nested else h)


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutGRUCell(SingleStateZoneoutMixin, keras.layers.GRUCell):
    """GRU cell with zoneout on h; same weights as ``keras.layers.GRUCell``.

    Args:
        units: positive int.
        zoneout: probability in [0, 1] of KEEPING each unit's previous value.
        zoneout_inference: "expectation" or "deterministic".
        **kwargs: any argument of ``keras.layers.GRUCell`` (``seed`` seeds the masks).

    Raises:
        ValueError: ``units`` not a positive integer, ``zoneout`` outside [0, 1], or an unknown
            ``zoneout_inference``.

    Call arguments:
        inputs: [B, I]. states: ``[h]`` or h, [B, H]. training: bool.
    """


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutSimpleRNNCell(SingleStateZoneoutMixin, keras.layers.SimpleRNNCell):
    """Simple (tanh) RNN cell with zoneout on h; same weights as ``keras.layers.SimpleRNNCell``.

    Args:
        units: positive int.
        zoneout: probability in [0, 1] of KEEPING each unit's previous value.
        zoneout_inference: "expectation" or "deterministic".
        **kwargs: any argument of ``keras.layers.SimpleRNNCell`` (``seed`` seeds the masks).

    Raises:
        ValueError: ``units`` not a positive integer, ``zoneout`` outside [0, 1], or an unknown
            ``zoneout_inference``.

    Call arguments:
        inputs: [B, I]. states: ``[h]`` or h, [B, H]. training: bool.
    """
