"""Fast zoneout sequence layers: Keras's LSTM, GRU and SimpleRNN API on a fused XLA kernel."""

from __future__ import annotations

import dataclasses
import inspect

import keras
import tensorflow as tf

from tf_zoneout import kernel_choice, kernels, regularizers
from tf_zoneout.cells import ZoneoutGRUCell, ZoneoutLSTMCell, ZoneoutSimpleRNNCell
from tf_zoneout.zoneout import keep_factors


@dataclasses.dataclass(frozen=True)
class _LoopInputs:
    """What the fused kernel runs on, every regularizer prepared (``_loop_inputs``).

    Attributes:
        xw: [T, B, G] the input projection of every step, input bias added.
        recurrent_kernel: [units, G] (weight noise drawn in training).
        b_rec: the recurrent bias (GRU's reset_after), or None.
        state0: the initial states (and the output-gate state, from 0).
        keeps: each state's zoneout keep factors (padding and stochastic depth folded in).
        update: input-gate dropout's update factor, or None.
        rec_mask: [B, units] the variational recurrent mask, or None.
        valid: [T, B, 1] the unpadded steps, or None without a mask.
    """

    xw: tf.Tensor
    recurrent_kernel: tf.Tensor
    b_rec: tf.Tensor | None
    state0: tuple
    keeps: tuple
    update: tf.Tensor | None
    rec_mask: tf.Tensor | None
    valid: tf.Tensor | None


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


def recurrence_dtype(compute_dtype) -> tf.DType:
    """The dtype a recurrence runs in for a layer computing in ``compute_dtype``: float32 for
    float16 (mixed_float16: the states and the step math stay float32; only the input projection
    and what surrounds the layer run in float16), else ``compute_dtype`` itself (bfloat16 has
    float32's range).

    Args:
        compute_dtype: the layer's compute dtype (its inputs' dtype).
    """
    return tf.float32 if tf.as_dtype(compute_dtype) == tf.float16 else tf.as_dtype(compute_dtype)


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


class FastRecurrentMixin(kernel_choice.KernelChoiceMixin):
    """Runs a Keras RNN layer's loop on ``kernels.run`` instead of calling the cell per step.

    Subclasses provide ``_step()`` (the kernel's step math, or None when the
    configuration needs the cell path) and ``_split_bias(bias)`` -> (b_in, b_rec).
    """

    _cell_class: type
    _cell_name: str
    _state_names: tuple[str, ...] = ("h",)
    _has_input_gate = True
    _extra_gate_state = False

    def _init_fast(
        self, units, zoneout_kwargs: dict, static_mask: bool, jit_compile, baselines: dict, kwargs: dict
    ):
        """Build the zoneout cell and initialise this layer as a ``keras.layers.RNN`` around it.

        ``baselines``: the baselines' arguments (input_gate_dropout, stochastic_depth, weight_noise,
        norm_stabilizer, norm_stabilizer_state, variational_dropout); ``kwargs`` go to Keras.
        """
        self._init_baselines(**baselines)
        use_cudnn = kwargs.pop("use_cudnn", "auto")
        if use_cudnn not in ("auto", True, False):
            raise ValueError(f"`use_cudnn` must be 'auto', True or False. Received: use_cudnn={use_cudnn!r}")
        if use_cudnn is True:
            raise ValueError(
                "use_cudnn=True: cuDNN's fused RNN cannot apply zoneout (it has no per-step state "
                f"masks). With use_cudnn='auto', {type(self).__name__} runs Keras's path (cuDNN on a GPU) "
                "by itself for the calls that compute exactly Keras's layer (zoneout and baselines off, "
                "or deterministic inference), and its own fused kernel otherwise; False: never cuDNN."
            )
        cell_kwargs, layer_kwargs = _split_cell_kwargs(self._cell_class, kwargs)
        if "implementation" in layer_kwargs:  # a cell argument Keras reads from **kwargs; same math
            cell_kwargs["implementation"] = layer_kwargs.pop("implementation")
        cell = self._cell_class(units, name=self._cell_name, **zoneout_kwargs, **cell_kwargs)
        keras.layers.RNN.__init__(self, cell, **layer_kwargs)
        self.input_spec = keras.layers.InputSpec(ndim=3)
        self.static_mask = bool(static_mask)
        self.jit_compile = kernel_choice.check_jit_compile(jit_compile)
        self.requested_use_cudnn = use_cudnn  # kept for the config and for Keras's path
        # Keras's call would otherwise take cuDNN on a GPU, without zoneout: only ``computes_keras``
        # calls may, through ``_keras_inner_loop``.
        self.use_cudnn = False
        if self.unroll and (self.static_mask or self._baselines_on):
            raise ValueError(
                "`unroll=True` runs Keras's unrolled per-step loop, which does not implement `static_mask` "
                "or the baselines (input_gate_dropout, stochastic_depth, weight_noise, norm_stabilizer); "
                "leave unroll=False (the fused kernel is faster than unrolling)."
            )

    def _init_baselines(
        self,
        input_gate_dropout,
        stochastic_depth,
        weight_noise,
        norm_stabilizer,
        norm_stabilizer_state,
        variational_dropout,
    ):
        state = norm_stabilizer_state
        name = type(self).__name__
        if input_gate_dropout and not self._has_input_gate:
            raise ValueError(
                f"`input_gate_dropout` does not apply to {name} (it has no input gate or candidate)."
            )
        self.input_gate_dropout = regularizers.check_probability(input_gate_dropout, "input_gate_dropout")
        self.stochastic_depth = regularizers.check_probability(stochastic_depth, "stochastic_depth")
        self.weight_noise = regularizers.check_non_negative(weight_noise, "weight_noise")
        self.norm_stabilizer = regularizers.check_non_negative(norm_stabilizer, "norm_stabilizer")
        if state not in self._state_names:
            raise ValueError(
                f"`norm_stabilizer_state` must be one of {self._state_names} for {name}. Received: {state!r}"
            )
        self.norm_stabilizer_state = state
        self.variational_dropout = regularizers.check_variational(variational_dropout)

    @property
    def _baselines_on(self) -> bool:
        return bool(
            self.input_gate_dropout or self.stochastic_depth or self.weight_noise or self.norm_stabilizer
        )

    @property
    def uses_fast_path(self) -> bool:
        """True when calls run on the fused kernel (False: Keras's per-step cell loop, which also
        honours ``unroll=True``)."""
        return (
            self._step() is not None
            and not (self.cell.dropout or self.cell.recurrent_dropout)
            and not self.unroll
        )

    def computes_keras(self, training, mask=None) -> bool:
        """Whether a call computes exactly what Keras's layer with the same weights computes, so that
        Keras's own path (cuDNN on a GPU) may run it (``kernel_choice``).

        True when nothing of zoneout or the baselines acts in this mode: in training, every zoneout
        rate 0 and no baseline; at inference, rates 0 or ``zoneout_inference="deterministic"``, and
        no input-gate dropout or stochastic depth (whose inference factors change the step). Never
        with a padding ``mask`` (cuDNN writes zeros at padded steps where this layer repeats the last
        output) or ``use_cudnn=False``.

        Args:
            training: the call's ``training``: a bool, None, or a boolean tensor (then both modes
                must hold).
            mask: the call's padding mask, or None.
        """
        if mask is not None or self.requested_use_cudnn is False or self._extra_gate_state:
            return False
        no_zoneout = not any(self.cell.zoneout_rates)
        in_training = no_zoneout and not self._baselines_on and not any(self.variational_dropout)
        at_inference = (no_zoneout or self.cell.zoneout_inference == "deterministic") and not (
            self.input_gate_dropout or self.stochastic_depth
        )
        if training is True:
            return in_training
        if training is False or training is None:
            return at_inference
        return in_training and at_inference

    def _keras_inner_loop(self, sequences, initial_state, mask, training):
        """Keras's own layer path (cuDNN where available), with ``use_cudnn`` as the layer was given."""
        self.use_cudnn = self.requested_use_cudnn
        try:
            return super().inner_loop(sequences, initial_state, mask, training)
        finally:
            self.use_cudnn = False

    def call(self, sequences, initial_state=None, mask=None, training=False):
        if not sequences.dtype.is_floating:  # as Keras: integer inputs are computed in float
            sequences = tf.cast(sequences, self.compute_dtype)
        return super().call(sequences, initial_state=initial_state, mask=mask, training=training)

    def inner_loop(self, sequences, initial_state, mask, training=False):
        """Keras's ``RNN.inner_loop`` on the fused kernel: (last output, outputs, final states).

        In order: (1) dispatch: Keras's cell loop when the fast path is off (dropout, unroll), Keras's
        own layer (cuDNN on a GPU) when this call computes exactly what it computes; (2)
        ``_loop_inputs``: every regularizer prepared at once (see there); (3) the kernel, which
        applies zoneout, input-gate dropout and the variational recurrent mask at each step; (4) the
        norm stabilizer's loss on the states it penalizes; (5) outputs back in the compute dtype,
        padded steps zeroed if asked, batch-major; final states in the initial states' dtype.
        """
        if tf.nest.is_nested(mask):
            mask = mask[0]
        if not self.uses_fast_path:
            if self.static_mask or self._baselines_on:
                raise ValueError(
                    "`static_mask` and the baselines (input_gate_dropout, stochastic_depth, weight_noise, "
                    "norm_stabilizer) need the fast path, which this configuration "
                    "(dropout, recurrent_dropout or GRU reset_after=False) does not use."
                )
            return keras.layers.RNN.inner_loop(self, sequences, initial_state, mask, training)
        implementation = self._implementation(
            sequences, training, masked=mask is not None, keras_eligible=self.computes_keras(training, mask)
        )
        if implementation == "keras":
            return self._keras_inner_loop(sequences, initial_state, mask, training)
        loop = self._loop_inputs(sequences, initial_state, mask, training)
        penalized = self._state_names.index(self.norm_stabilizer_state)
        all_states = bool(self.norm_stabilizer) and penalized > 0
        outputs, final = kernels.run(
            self._step(), loop.xw, loop.recurrent_kernel, loop.b_rec, loop.state0, loop.keeps,
            update=loop.update, rec_mask=loop.rec_mask, all_states=all_states,
            jit_compile=implementation == "xla", inference=training is False or training is None,
        )  # fmt: skip
        sequences_out = outputs if all_states else (outputs,)
        if self.norm_stabilizer and training is True:
            loss = regularizers.norm_stabilizer_loss(
                sequences_out[penalized], loop.state0[penalized], self.norm_stabilizer
            )
            self.add_loss(loss)
        outputs = tf.cast(sequences_out[0], sequences.dtype)
        last_output = outputs[-1]
        if loop.valid is not None and self.zero_output_for_mask:
            outputs = outputs * tf.cast(loop.valid, sequences.dtype)
        outputs = tf.transpose(outputs, [1, 0, 2]) if self.return_sequences else last_output[:, None]
        # Final states in the given initial states' dtype (a float32 carried state stays float32).
        given = tf.nest.flatten(initial_state)
        return last_output, outputs, [tf.cast(s, g.dtype) for s, g in zip(final, given)]

    def _loop_inputs(self, sequences, initial_state, mask, training) -> _LoopInputs:
        """Every regularizer of a call prepared at once, in order: reversal (``go_backwards``);
        time-major inputs with the variational input mask; weight noise on both kernels (one draw
        per call); the hoisted input projection [T*B, I] x [I, G] with the input bias; the zoneout
        keeps with padding and stochastic depth folded in (``_keeps``); input-gate dropout's update
        factor; the variational recurrent mask.

        The input side runs in the compute dtype; the recurrence in ``recurrence_dtype`` (float32
        under a float16 policy: its states and step math, where float16's range would hurt).
        """
        cell, input_dtype = self.cell, sequences.dtype
        dtype = recurrence_dtype(input_dtype)
        if self.go_backwards:
            sequences = tf.reverse(sequences, [1])
            mask = None if mask is None else tf.reverse(mask, [1])
        x = tf.transpose(sequences, [1, 0, 2])  # [T, B, I]: the kernel is time-major
        steps, batch = tf.shape(x)[0], tf.shape(x)[1]
        input_drop, recurrent_drop = self.variational_dropout
        input_mask = regularizers.variational_mask(
            input_drop, training, cell.seed_generator, tf.shape(x)[1:], input_dtype
        )
        if input_mask is not None:
            x = x * input_mask  # the same mask at every step
        # The seed generator's draws in this order: input mask, recurrent mask, weight noise, keeps,
        # stochastic depth, input-gate dropout (a given seed keeps giving the same masks).
        rec_mask = regularizers.variational_mask(
            recurrent_drop, training, cell.seed_generator, tf.stack([batch, cell.units]), dtype
        )
        kernel, recurrent_kernel = self._noisy_kernels(training, input_dtype, dtype)
        b_in, b_rec = self._split_bias(None if cell.bias is None else tf.cast(cell.bias, dtype))
        xw = tf.reshape(tf.matmul(tf.reshape(x, [-1, x.shape[-1]]), kernel), [steps, batch, kernel.shape[-1]])
        xw = tf.cast(xw, dtype)
        if b_in is not None:
            xw = xw + b_in
        state0 = tuple(tf.cast(s, dtype) for s in tf.nest.flatten(initial_state))
        keeps, valid = self._keeps(mask, sequences, training, batch, steps, dtype)
        if self._extra_gate_state:  # output-gate zoneout carries o'_{t-1} as a third state, from 0
            state0 = (*state0, tf.zeros_like(state0[0]))
        update = regularizers.update_factor(self.input_gate_dropout, training, cell.seed_generator, dtype)
        return _LoopInputs(xw, recurrent_kernel, b_rec, state0, keeps, update, rec_mask, valid)

    def _noisy_kernels(self, training, input_dtype, dtype):
        """(kernel, recurrent kernel) in their dtypes, with weight noise in training (one draw per
        call; the variables themselves never change)."""
        cell = self.cell
        kernel, recurrent_kernel = tf.cast(cell.kernel, input_dtype), tf.cast(cell.recurrent_kernel, dtype)
        if not self.weight_noise or training is False or training is None:
            return kernel, recurrent_kernel
        noisy = [
            regularizers.noisy(k, self.weight_noise, cell.seed_generator) for k in (kernel, recurrent_kernel)
        ]
        if isinstance(training, tf.Tensor):
            noisy = [tf.where(training, n, k) for n, k in zip(noisy, (kernel, recurrent_kernel))]
        return tuple(noisy)

    def _keeps(self, mask, sequences, training, batch, steps, dtype):
        """(the zoneout keep factors of every state, valid): a padded step and a step dropped by
        stochastic depth keep the whole state; ``valid`` [T, B, 1] marks the unpadded steps (None
        without a mask). The output-gate state, when there is one, has no keep of its own."""
        cell = self.cell
        keeps = keep_factors(
            cell.zoneout_rates, training, cell.seed_generator, tf.stack([batch, cell.units]), steps,
            dtype=dtype, share_mask=getattr(cell, "share_mask", False), inference=cell.zoneout_inference,
            static_mask=self.static_mask,
            lazy=mask is None and not self.stochastic_depth,  # padding and depth need materialised masks
        )  # fmt: skip
        whole = regularizers.whole_state_keep(
            self.stochastic_depth, training, cell.seed_generator, batch, steps, dtype
        )
        valid = None
        if mask is not None:
            _check_sequence_mask(mask, sequences)
            valid = tf.cast(tf.transpose(mask), tf.bool)[:, :, None]  # [T, B, 1]
            whole = regularizers.combine_keeps(whole, tf.logical_not(valid))
        if self._extra_gate_state:
            keeps = (*keeps, None)
        if whole is not None:
            keeps = tuple(regularizers.combine_keeps(k, whole) for k in keeps)
        return keeps, valid

    def inference_step(self, inputs, states):
        """One step at inference (``training=False``), with no loop and no random op: what the
        layer computes at one time step of a sequence, for token-by-token decoding and the exports'
        ``step`` signature (TFLite builtins and ONNX convert it).

        With output-gate zoneout, o'_{t-1} starts at 0, as in a one-step call of the layer.

        Args:
            inputs: [B, I] this step's input.
            states: the states, as ``initial_state`` takes them: [h] (GRU, SimpleRNN) or [h, c]
                (LSTM), each [B, H].

        Returns:
            The new states, in the same order, each [B, H]; h (first) is the step's output.

        Raises:
            ValueError: the layer reads its sequence backwards (``go_backwards``).
        """
        if self.go_backwards:
            raise ValueError(f"{self.name}: a layer with go_backwards=True has no forward step")
        states = list(states)
        if not self.uses_fast_path:  # Keras's cell step (dropout and recurrent_dropout off at inference)
            _, new_states = self.cell(inputs, states if len(states) > 1 else states[0], training=False)
            return list(tf.nest.flatten(new_states))
        cell = self.cell
        dtype = recurrence_dtype(inputs.dtype)
        b_in, b_rec = self._split_bias(None if cell.bias is None else tf.cast(cell.bias, dtype))
        xw = tf.cast(tf.matmul(inputs, tf.cast(cell.kernel, inputs.dtype)), dtype)
        if b_in is not None:
            xw = xw + b_in
        keeps = keep_factors(
            cell.zoneout_rates, False, None, None, dtype=dtype, inference=cell.zoneout_inference
        )
        whole = regularizers.whole_state_keep(self.stochastic_depth, False, None, None, None, dtype)
        keeps = tuple(regularizers.combine_keeps(k, whole) for k in keeps)
        state = tuple(tf.cast(s, dtype) for s in states)
        if self._extra_gate_state:
            state, keeps = (*state, tf.zeros_like(state[0])), (*keeps, None)
        update = regularizers.update_factor(self.input_gate_dropout, False, None, dtype)
        new_state, _ = kernels.advance(
            self._step(), xw, tf.cast(cell.recurrent_kernel, dtype), b_rec, state, keeps, update
        )
        return [tf.cast(s, g.dtype) for s, g in zip(new_state[: len(states)], states)]

    def get_config(self):
        # "seed" is repeated because keras.layers.SimpleRNN's config drops it.
        return {
            **super().get_config(),
            **self.cell._zoneout_config(),
            "static_mask": self.static_mask,
            "jit_compile": self.jit_compile,
            "seed": self.cell.seed,
            "stochastic_depth": self.stochastic_depth,
            "weight_noise": self.weight_noise,
            "norm_stabilizer": self.norm_stabilizer,
            "norm_stabilizer_state": self.norm_stabilizer_state,
            "variational_dropout": list(self.variational_dropout),
            "use_cudnn": self.requested_use_cudnn,
            **({"input_gate_dropout": self.input_gate_dropout} if self._has_input_gate else {}),
        }


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutLSTM(FastRecurrentMixin, keras.layers.LSTM):
    """LSTM layer with zoneout (Krueger et al., 2017), with its own fused loop.

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
        jit_compile: "auto" (default): time the XLA-compiled and the graph-mode loop on
            this machine once per configuration, batch size and dtype, and keep the faster
            (cached; see ``tf_zoneout.kernel_choice``; ``$TF_ZONEOUT_KERNEL=xla|graph``
            forces one). True: always XLA. False: always graph mode. It governs training
            calls: an inference call runs the graph loop inline whatever it says (compiled by
            XLA only within a caller that is), so ``model.export()`` gives a SavedModel that
            serves without XLA and converts to TFLite and ONNX. The same outputs and gradients
            either way.
        output_gate_zoneout: the paper's variant (sec. 3.2) in which the input-gate dropout
            factor d_t also zones out the output gate, o'_t = d_t o_t + (1 - d_t) o'_{t-1}, so a
            unit whose update was dropped keeps the gate it had (needs ``input_gate_dropout``).
        input_gate_dropout: probability of DROPPING the input gate's update at each step and
            unit (Semeniuta et al. 2016, "recurrent dropout without memory loss"):
            c_t = f * c_{t-1} + d_t * i_t * g_t.
        stochastic_depth: probability that an example keeps its whole state at a step (zoneout
            of all units at once, as the paper adapts stochastic depth).
        weight_noise: standard deviation of Gaussian noise added to the input and recurrent
            weights once per training call (Graves 2011); the stored weights never change.
        norm_stabilizer: beta of the norm stabilizer (Krueger & Memisevic 2016),
            beta * mean_t (||s_t|| - ||s_{t-1}||)^2, added to the layer's losses in training.
        norm_stabilizer_state: "h" (default) or "c", the state it penalizes.
        variational_dropout: drop probability, or an (input, recurrent) pair, of Gal &
            Ghahramani's variational dropout: one inverted-dropout mask per sequence on the
            inputs and one on h_{t-1} before the recurrent matmul; each in [0, 1).
        **kwargs: any other ``keras.layers.LSTM`` argument (``seed``: the int seed of the masks,
            the same seed and inputs giving the same outputs; ``return_sequences``,
            ``return_state``, ``stateful``, ``go_backwards``, initializers, ...).
            ``dropout``/``recurrent_dropout`` > 0 and ``unroll=True`` run on Keras's
            per-step loop (with zoneout). ``implementation`` is accepted (same math).
            ``use_cudnn``: "auto" (default): calls that compute exactly Keras's layer (see
            ``computes_keras``) may run Keras's path, cuDNN on a GPU; False: never. True raises
            ValueError, since cuDNN cannot apply zoneout.

    Raises:
        ValueError: a probability outside [0, 1] (a variational one of 1), a negative
            ``weight_noise`` or ``norm_stabilizer``, an unknown ``zoneout_inference``,
            ``jit_compile`` or ``norm_stabilizer_state``, ``output_gate_zoneout`` without
            ``input_gate_dropout``, ``use_cudnn=True``, or ``unroll=True`` with ``static_mask``
            or a baseline.

    Call arguments:
        sequences: [B, T, I] inputs.
        initial_state: list of [B, H] state tensors (optional; zeros otherwise).
        mask: [B, T] bool, True for real steps; a padded step leaves the state unchanged.
        training: bool; training draws fresh masks, inference uses the expectation.

    Example:
        >>> layer = tz.ZoneoutLSTM(64, zoneout_cells=0.5, zoneout_states=0.05,
        ...                        return_sequences=True, seed=1)
        >>> layer(np.zeros([2, 10, 8], "float32"), training=True).shape
        TensorShape([2, 10, 64])
    """

    _cell_class = ZoneoutLSTMCell
    _cell_name = "zoneout_lstm_cell"
    _state_names = ("h", "c")

    def __init__(
        self,
        units,
        zoneout_cells=0.0,
        zoneout_states=0.0,
        share_mask=False,
        static_mask=False,
        zoneout_inference="expectation",
        jit_compile="auto",
        output_gate_zoneout=False,
        input_gate_dropout=0.0,
        stochastic_depth=0.0,
        weight_noise=0.0,
        norm_stabilizer=0.0,
        norm_stabilizer_state="h",
        variational_dropout=0.0,
        **kwargs,
    ):
        if output_gate_zoneout and not input_gate_dropout:
            raise ValueError(
                "`output_gate_zoneout=True` reuses the input-gate dropout mask: "
                "set `input_gate_dropout` > 0 too."
            )
        zoneout_kwargs = dict(
            zoneout_cells=zoneout_cells,
            zoneout_states=zoneout_states,
            share_mask=share_mask,
            zoneout_inference=zoneout_inference,
        )
        baselines = dict(
            input_gate_dropout=input_gate_dropout,
            stochastic_depth=stochastic_depth,
            weight_noise=weight_noise,
            norm_stabilizer=norm_stabilizer,
            norm_stabilizer_state=norm_stabilizer_state,
            variational_dropout=variational_dropout,
        )
        self._init_fast(units, zoneout_kwargs, static_mask, jit_compile, baselines, kwargs)
        self.output_gate_zoneout = bool(output_gate_zoneout)

    @property
    def _extra_gate_state(self) -> bool:
        return self.output_gate_zoneout

    def _step(self):
        return kernels.LSTMStep(
            kernels.resolve(self.cell.activation),
            kernels.resolve(self.cell.recurrent_activation),
            output_gate_zoneout=self.output_gate_zoneout,
        )

    def get_config(self):
        return {**super().get_config(), "output_gate_zoneout": self.output_gate_zoneout}

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
        jit_compile="auto",
        input_gate_dropout=0.0,
        stochastic_depth=0.0,
        weight_noise=0.0,
        norm_stabilizer=0.0,
        norm_stabilizer_state="h",
        variational_dropout=0.0,
        **kwargs,
    ):
        zoneout_kwargs = dict(zoneout=zoneout, zoneout_inference=zoneout_inference)
        baselines = dict(
            input_gate_dropout=input_gate_dropout,
            stochastic_depth=stochastic_depth,
            weight_noise=weight_noise,
            norm_stabilizer=norm_stabilizer,
            norm_stabilizer_state=norm_stabilizer_state,
            variational_dropout=variational_dropout,
        )
        self._init_fast(units, zoneout_kwargs, static_mask, jit_compile, baselines, kwargs)


@keras.saving.register_keras_serializable(package="tf_zoneout")
class ZoneoutGRU(SingleStateLayerMixin, keras.layers.GRU):
    """GRU layer with zoneout on h; drop-in for ``keras.layers.GRU``.

    Same weights as Keras (``kernel`` [I, 3H], ``recurrent_kernel`` [H, 3H],
    ``bias`` [2, 3H] with the default ``reset_after=True``; gates z, r, h).
    ``reset_after=False``, ``dropout`` or ``recurrent_dropout`` run on Keras's
    per-step loop; everything else on the fused kernel.

    Args:
        units: positive int.
        zoneout: probability in [0, 1] of KEEPING each unit of h at each step.
        static_mask: one mask per sequence, the same at every step.
        zoneout_inference: "expectation" (default, the paper's) or "deterministic".
        jit_compile: "auto" (default, measured), True (XLA) or False (graph mode), as in
            ``ZoneoutLSTM``.
        input_gate_dropout: probability of DROPPING the candidate's update at each step and unit
            (Semeniuta et al. 2016).
        stochastic_depth: probability that an example keeps its whole state at a step.
        weight_noise: standard deviation of Gaussian noise on the weights, per training call.
        norm_stabilizer: beta of the norm stabilizer on h, added to the layer's losses.
        norm_stabilizer_state: "h", the only state.
        variational_dropout: drop probability, or an (input, recurrent) pair, of variational
            dropout (one mask per sequence), each in [0, 1).
        **kwargs: any other argument of the Keras layer (``seed``: the int seed of the masks).

    Raises:
        ValueError: as ``ZoneoutLSTM``.

    Call arguments:
        sequences: [B, T, I] inputs.
        initial_state: list of [B, H] state tensors (optional; zeros otherwise).
        mask: [B, T] bool, True for real steps; a padded step leaves the state unchanged.
        training: bool; training draws fresh masks, inference uses the expectation.
    """

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
    """Simple (tanh) RNN layer with zoneout on h; drop-in for ``keras.layers.SimpleRNN``.

    Same weights as Keras (``kernel`` [I, H], ``recurrent_kernel`` [H, H], ``bias`` [H]).

    Args:
        units: positive int.
        zoneout: probability in [0, 1] of KEEPING each unit of h at each step.
        static_mask: one mask per sequence, the same at every step.
        zoneout_inference: "expectation" (default, the paper's) or "deterministic".
        jit_compile: "auto" (default, measured), True (XLA) or False (graph mode), as in
            ``ZoneoutLSTM``.
        input_gate_dropout: must stay 0 (a tanh-RNN has no input gate).
        stochastic_depth: probability that an example keeps its whole state at a step.
        weight_noise: standard deviation of Gaussian noise on the weights, per training call.
        norm_stabilizer: beta of the norm stabilizer on h, added to the layer's losses.
        norm_stabilizer_state: "h", the only state.
        variational_dropout: drop probability, or an (input, recurrent) pair, of variational
            dropout (one mask per sequence), each in [0, 1).
        **kwargs: any other argument of the Keras layer (``seed``: the int seed of the masks).

    Raises:
        ValueError: as ``ZoneoutLSTM``; and any ``input_gate_dropout``.

    Call arguments:
        sequences: [B, T, I] inputs.
        initial_state: list of [B, H] state tensors (optional; zeros otherwise).
        mask: [B, T] bool, True for real steps; a padded step leaves the state unchanged.
        training: bool; training draws fresh masks, inference uses the expectation.
    """

    _cell_class = ZoneoutSimpleRNNCell
    _cell_name = "zoneout_simple_rnn_cell"
    _has_input_gate = False

    def _step(self):
        return kernels.SimpleRNNStep(kernels.resolve(self.cell.activation))

    def _split_bias(self, bias):
        return bias, None
