"""One recurrent layer from a plain description: cell type, size, zoneout and baselines."""

from __future__ import annotations

import dataclasses

import keras

from tf_zoneout.batchnorm import RecurrentBatchNormLSTM
from tf_zoneout.layers import ZoneoutGRU, ZoneoutLSTM, ZoneoutSimpleRNN
from tf_zoneout.regularizers import check_variational

CELL_TYPES = ("lstm", "gru", "rnn", "bn_lstm")
INITIALIZATIONS = ("orthogonal", "uniform", "glorot")


@dataclasses.dataclass(frozen=True)
class RecurrentSpec:
    """What a recurrent layer is; zoneout rates are probabilities of KEEPING the previous value,
    dropout-like rates probabilities of dropping.

    ``zoneout_cells`` applies to the LSTM's c; ``zoneout_states`` to h (the only state
    of GRU and tanh-RNN). ``variational_dropout`` is (input, recurrent) drop probabilities.
    """

    cell: str = "lstm"
    units: int = 128
    zoneout_cells: float = 0.0
    zoneout_states: float = 0.0
    share_mask: bool = False
    static_mask: bool = False
    input_gate_dropout: float = 0.0
    output_gate_zoneout: bool = False
    weight_noise: float = 0.0
    norm_stabilizer: float = 0.0
    stochastic_depth: float = 0.0
    variational_dropout: tuple[float, float] = (0.0, 0.0)
    init: str = "orthogonal"
    init_scale: float = 0.04
    max_timesteps: int = 1000
    jit_compile: bool | str = "auto"  # the layers' kernel: "auto" (measured), True (XLA), False (graph)


def initializer(init: str, scale: float, seed: int, recurrent: bool):
    """The Keras initializer named by ``init`` ("orthogonal" = orthogonal recurrent weights)."""
    if init == "uniform":
        return keras.initializers.RandomUniform(-scale, scale, seed=seed)
    if init == "orthogonal" and recurrent:
        return keras.initializers.Orthogonal(seed=seed)
    if init in INITIALIZATIONS:
        return keras.initializers.GlorotUniform(seed=seed)
    raise ValueError(f"unknown initialization {init!r}; expected one of {INITIALIZATIONS}")


def check_spec(spec: RecurrentSpec) -> RecurrentSpec:
    """Raise ValueError for a combination no layer supports (the one place these rules live; the run
    configuration checks them through here before any work starts)."""
    if spec.cell not in CELL_TYPES:
        raise ValueError(f"unknown cell type {spec.cell!r}; expected one of {CELL_TYPES}")
    if spec.cell in ("gru", "rnn") and spec.zoneout_cells:
        raise ValueError(f"a {spec.cell} has no cell state: set zoneout_states (its h), not zoneout_cells")
    if spec.output_gate_zoneout and spec.cell != "lstm":
        raise ValueError("output_gate_zoneout applies to the LSTM only")
    if spec.output_gate_zoneout and not spec.input_gate_dropout:
        raise ValueError("output_gate_zoneout reuses the input-gate dropout mask: set input_gate_dropout too")
    if spec.cell == "rnn" and spec.input_gate_dropout:
        raise ValueError("input_gate_dropout applies to lstm and gru (a tanh-RNN has no input gate)")
    check_variational(spec.variational_dropout)
    if spec.cell == "bn_lstm":
        baselines = {
            "input_gate_dropout": spec.input_gate_dropout,
            "output_gate_zoneout": spec.output_gate_zoneout,
            "weight_noise": spec.weight_noise,
            "norm_stabilizer": spec.norm_stabilizer,
            "stochastic_depth": spec.stochastic_depth,
            "variational_dropout": any(spec.variational_dropout),
            "static_mask": spec.static_mask,
        }
        given = [name for name, value in baselines.items() if value]
        if given:
            raise ValueError(
                f"the batch-normalized LSTM (cell bn_lstm) takes zoneout only, not {', '.join(given)}: "
                "use cell lstm for the baselines"
            )
    return spec


def make_recurrent_layer(spec: RecurrentSpec, seed: int, return_sequences=True, return_state=True, name=None):
    """A ``ZoneoutLSTM``/``GRU``/``SimpleRNN`` or ``RecurrentBatchNormLSTM`` for ``spec``.

    Called as ``layer(x [B, T, I], initial_state=[...], training=...)`` it returns
    ``[outputs, *states]`` when ``return_state``.
    """
    check_spec(spec)
    common = dict(return_sequences=return_sequences, return_state=return_state, seed=seed, name=name)
    if spec.cell == "bn_lstm":
        return RecurrentBatchNormLSTM(
            spec.units,
            max_timesteps=spec.max_timesteps,
            zoneout_cells=spec.zoneout_cells,
            zoneout_states=spec.zoneout_states,
            share_mask=spec.share_mask,
            jit_compile=spec.jit_compile,
            **common,
        )
    weights = dict(
        kernel_initializer=initializer(spec.init, spec.init_scale, seed + 1, recurrent=False),
        recurrent_initializer=initializer(spec.init, spec.init_scale, seed + 2, recurrent=True),
    )
    if spec.init == "uniform":
        weights["bias_initializer"] = initializer(spec.init, spec.init_scale, seed + 3, recurrent=False)
    baselines = dict(
        input_gate_dropout=spec.input_gate_dropout,
        weight_noise=spec.weight_noise,
        norm_stabilizer=spec.norm_stabilizer,
        stochastic_depth=spec.stochastic_depth,
        variational_dropout=tuple(spec.variational_dropout),
        static_mask=spec.static_mask,
        jit_compile=spec.jit_compile,
    )
    if spec.cell == "lstm":
        return ZoneoutLSTM(
            spec.units,
            zoneout_cells=spec.zoneout_cells,
            zoneout_states=spec.zoneout_states,
            share_mask=spec.share_mask,
            output_gate_zoneout=spec.output_gate_zoneout,
            **baselines,
            **weights,
            **common,
        )
    layer_class = ZoneoutGRU if spec.cell == "gru" else ZoneoutSimpleRNN
    return layer_class(spec.units, zoneout=spec.zoneout_states, **baselines, **weights, **common)


def num_states(cell: str) -> int:
    """States per layer: 2 for LSTMs (h, c), 1 otherwise."""
    return 2 if cell in ("lstm", "bn_lstm") else 1
