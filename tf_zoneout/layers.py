"""Fast zoneout sequence layers: Keras's LSTM, GRU and SimpleRNN API on a fused XLA kernel."""

from __future__ import annotations

import inspect

import keras
import tensorflow as tf

from tf_zoneout import kernels
from tf_zoneout.cells import ZoneoutGRUCell, ZoneoutLSTMCell, ZoneoutSimpleRNNCell
from tf_zoneout.zoneout import keep_factors

# Arguments that belong to the Keras Layer base and are given to both the cell and the layer.
_SHARED_KWARGS = ("dtype", "trainable")


def _split_cell_kwargs(cell_class, kwargs: dict) -> tuple[dict, dict]:
    """Split layer kwargs into (cell kwargs, RNN-layer kwargs) by the cell's signature."""
    cell_params = set()
    for klass in cell_class.__mro__:
        if "__init__" in vars(klass):
            cell_params |= set(inspect.signature(klass.__init__).parameters)
    cell_params -= {"self", "units", "kwargs", "name"}
    cell_kwargs = {k: v for k, v in kwargs.items() if k in cell_params}
    layer_kwargs = {k: v for k, v in kwargs.items() if k not in cell_params or k in _SHARED_KWARGS}
    for key in _SHARED_KWARGS:
        if key in kwargs:
            cell_kwargs[key] = kwargs[key]
    return cell_kwargs, layer_kwargs


def _check_sequence_mask(mask, sequences):
    """Raise ValueError unless ``mask`` is [B, T] matching ``sequences`` [B, T, I]."""
    if mask.shape.rank != 2:
        raise ValueError(
            f"`mask` must have shape [batch, timesteps]; received rank {mask.shape.rank} "
            f"(shape {mask.shape}) for inputs of shape {sequences.shape}."
        )
    for axis, name in ((0, "batch"), (1, "timesteps")):
        m, s = mask.shape[axis], sequences.shape[axis]
        if m is not None and s is not None and m != s:
            raise ValueError(
                f"`mask` has {m} {name} but the inputs have {s}: the mask must have shape "
                f"[batch, timesteps] = [{sequences.shape[0]}, {sequences.shape[1]}]."
            )


def _fold_padding(keep, valid):
    """Keep factor that also keeps the whole state where ``valid`` [T, B, 1] is False."""
    if keep is None:
        return tf.logical_not(valid)
    if keep.dtype == tf.bool:
        return tf.logical_or(keep, tf.logical_not(valid))
    return 1.0 - (1.0 - keep) * tf.cast(valid, keep.dtype)


class FastRecurrentMixin:
    """Runs a Keras RNN layer's loop on ``kernels.run`` instead of calling the cell per step.

    Subclasses provide ``_step()`` (the kernel's step math, or None when the
    configuration needs the cell path) and ``_split_bias(bias)`` -> (b_in, b_rec).
    """

    _cell_class: type
    _cell_name: str

    def _init_fast(self, units, zoneout_kwargs: dict, static_mask: bool, jit_compile: bool, kwargs: dict):
        """Build the zoneout cell and initialise this layer as a ``keras.layers.RNN`` around it."""
        cell_kwargs, layer_kwargs = _split_cell_kwargs(self._cell_class, kwargs)
        cell = self._cell_class(units, name=self._cell_name, **zoneout_kwargs, **cell_kwargs)
        keras.layers.RNN.__init__(self, cell, **layer_kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.static_mask = bool(static_mask)
        self.jit_compile = bool(jit_compile)
        self.use_cudnn = False

    @property
    def uses_fast_path(self) -> bool:
        """True when calls run on the fused kernel (False: Keras's per-step cell loop)."""
        return self._step() is not None and not (self.cell.dropout or self.cell.recurrent_dropout)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        if tf.nest.is_nested(mask):
            mask = mask[0]
        if not self.uses_fast_path:
            if self.static_mask:
                raise ValueError(
                    "`static_mask=True` needs the fast path, which this configuration "
                    "(dropout, recurrent_dropout or GRU reset_after=False) does not use."
                )
            return keras.layers.RNN.inner_loop(self, sequences, initial_state, mask, training)
        cell = self.cell
        dtype = sequences.dtype
        if self.go_backwards:
            sequences = tf.reverse(sequences, [1])
            mask = None if mask is None else tf.reverse(mask, [1])
        x = tf.transpose(sequences, [1, 0, 2])  # [T, B, I]: the kernel is time-major
        steps, batch = tf.shape(x)[0], tf.shape(x)[1]
        kernel = tf.cast(cell.kernel, dtype)
        b_in, b_rec = self._split_bias(None if cell.bias is None else tf.cast(cell.bias, dtype))
        # Hoisted input projection: one [T*B, I] x [I, G] matmul for all steps.
        xw = tf.reshape(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel), [steps, batch, kernel.shape[-1]])
        if b_in is not None:
            xw = xw + b_in
        state0 = tuple(tf.cast(s, dtype) for s in tf.nest.flatten(initial_state))
        keeps = keep_factors(
            cell.zoneout_rates,
            training,
            cell.seed_generator,
            tf.stack([batch, cell.units]),
            steps,
            dtype=dtype,
            share_mask=getattr(cell, "share_mask", False),
            inference=cell.zoneout_inference,
            static_mask=self.static_mask,
            lazy=mask is None,  # padding is folded into materialised masks
        )
        valid = None
        if mask is not None:
            _check_sequence_mask(mask, sequences)
            # A padded step keeps the whole state: fold it into the keep factor.
            valid = tf.cast(tf.transpose(mask), tf.bool)[:, :, None]  # [T, B, 1]
            keeps = tuple(_fold_padding(k, valid) for k in keeps)
        outputs, final = kernels.run(
            self._step(),
            xw,
            tf.cast(cell.recurrent_kernel, dtype),
            b_rec,
            state0,
            keeps,
            jit_compile=self.jit_compile,
        )
        last_output = outputs[-1]
        if valid is not None and self.zero_output_for_mask:
            outputs = outputs * tf.cast(valid, dtype)
        outputs = tf.transpose(outputs, [1, 0, 2]) if self.return_sequences else last_output[:, None]
        return last_output, outputs, list(final)

    def get_config(self):
        # "seed" is repeated because keras.layers.SimpleRNN's config drops it.
        return {
            **super().get_config(),
            **self.cell._zoneout_config(),
            "static_mask": self.static_mask,
            "jit_compile": self.jit_compile,
            "seed": self.cell.seed,
        }


_LAYER_CALL_DOC = """
    Call arguments:
        sequences: [B, T, I] inputs.
        initial_state: list of [B, H] state tensors (optional; zeros otherwise).
        mask: [B, T] bool, True for real steps; a padded step leaves the state unchanged.
        training: bool; training draws fresh masks, inference uses the expectation.
"""


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutLSTM(FastRecurrentMixin, keras.layers.LSTM):
    (
        """LSTM layer with zoneout (Krueger et al., 2017), fast on CPU and GPU.

    Drop-in for ``keras.layers.LSTM``: same arguments, same weights (``kernel``
    [I, 4H], ``recurrent_kernel`` [H, 4H], ``bias`` [4H], gates i, f, c, o), so
    ``set_weights``/``get_weights`` work both ways; with zoneout 0 it computes
    exactly Keras's LSTM. The loop runs as a fused kernel (hoisted input
    projection, hand-written BPTT, XLA) instead of calling the cell per step.

    Args:
        units: positive int, size of h and c.
        zoneout_cells: probability in [0, 1] of KEEPING each unit of c at each step.
        zoneout_states: probability in [0, 1] of KEEPING each unit of h at each step.
        share_mask: one uniform draw for both masks (identical masks when the rates
            are equal).
        static_mask: one mask per sequence, the same at every step.
        zoneout_inference: "expectation" (default, the paper's) or "deterministic".
        jit_compile: compile the recurrence with XLA (default True; set False for
            exports that must run without XLA).
        seed: int seed of the masks; the same seed and inputs give the same outputs.
        **kwargs: any other ``keras.layers.LSTM`` argument (``return_sequences``,
            ``return_state``, ``stateful``, ``go_backwards``, initializers, ...).
            ``dropout``/``recurrent_dropout`` > 0 run on Keras's per-step loop.
    """
        + _LAYER_CALL_DOC
        + """
    Example:
        >>> layer = tz.ZoneoutLSTM(64, zoneout_cells=0.5, zoneout_states=0.05,
        ...                        return_sequences=True, seed=1)
        >>> layer(np.zeros([2, 10, 8], "float32"), training=True).shape
        TensorShape([2, 10, 64])
    """
    )

    _cell_class = ZoneoutLSTMCell
    _cell_name = "zoneout_lstm_cell"

    def __init__(
        self,
        units,
        zoneout_cells=0.0,
        zoneout_states=0.0,
        share_mask=False,
        static_mask=False,
        zoneout_inference="expectation",
        jit_compile=True,
        **kwargs,
    ):
        zoneout_kwargs = dict(
            zoneout_cells=zoneout_cells,
            zoneout_states=zoneout_states,
            share_mask=share_mask,
            zoneout_inference=zoneout_inference,
        )
        self._init_fast(units, zoneout_kwargs, static_mask, jit_compile, kwargs)

    def _step(self):
        return kernels.LSTMStep(
            kernels.resolve(self.cell.activation), kernels.resolve(self.cell.recurrent_activation)
        )

    def _split_bias(self, bias):
        return bias, None


class SingleStateLayerMixin(FastRecurrentMixin):
    """Constructor shared by the one-state layers (GRU, SimpleRNN): zoneout on h."""

    def __init__(
        self,
        units,
        zoneout=0.0,
        static_mask=False,
        zoneout_inference="expectation",
        jit_compile=True,
        **kwargs,
    ):
        zoneout_kwargs = dict(zoneout=zoneout, zoneout_inference=zoneout_inference)
        self._init_fast(units, zoneout_kwargs, static_mask, jit_compile, kwargs)


_SINGLE_STATE_LAYER_DOC = (
    """
    Args:
        units: positive int.
        zoneout: probability in [0, 1] of KEEPING each unit of h at each step.
        static_mask, zoneout_inference, jit_compile, seed: as in ``ZoneoutLSTM``.
        **kwargs: any other argument of the Keras layer.
"""
    + _LAYER_CALL_DOC
)


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutGRU(SingleStateLayerMixin, keras.layers.GRU):
    __doc__ = (
        """GRU layer with zoneout on h; drop-in for ``keras.layers.GRU``.

    Same weights as Keras (``kernel`` [I, 3H], ``recurrent_kernel`` [H, 3H],
    ``bias`` [2, 3H] with the default ``reset_after=True``; gates z, r, h).
    ``reset_after=False``, ``dropout`` or ``recurrent_dropout`` run on Keras's
    per-step loop; everything else on the fused kernel.
"""
        + _SINGLE_STATE_LAYER_DOC
    )

    _cell_class = ZoneoutGRUCell
    _cell_name = "zoneout_gru_cell"

    def _step(self):
        if not self.cell.reset_after:
            return None
        return kernels.GRUStep(
            kernels.resolve(self.cell.activation), kernels.resolve(self.cell.recurrent_activation)
        )

    def _split_bias(self, bias):
        if bias is None:
            return None, None
        return bias[0], bias[1]


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutSimpleRNN(SingleStateLayerMixin, keras.layers.SimpleRNN):
    __doc__ = (
        """Simple (tanh) RNN layer with zoneout on h; drop-in for ``keras.layers.SimpleRNN``.

    Same weights as Keras (``kernel`` [I, H], ``recurrent_kernel`` [H, H], ``bias`` [H]).
"""
        + _SINGLE_STATE_LAYER_DOC
    )

    _cell_class = ZoneoutSimpleRNNCell
    _cell_name = "zoneout_simple_rnn_cell"

    def _step(self):
        return kernels.SimpleRNNStep(kernels.resolve(self.cell.activation))

    def _split_bias(self, bias):
        return bias, None
