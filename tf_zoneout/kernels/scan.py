"""Zoneout recurrence over time: a fused forward loop and a hand-written BPTT.

The cell-specific math lives in small "step" objects (lstm.py, gru.py,
simple_rnn.py); this module runs any of them over a sequence, applies zoneout
to every state, and provides the backward pass.

Why it is shaped this way (measured on 2-core CPUs; figures in docs/BENCHMARKS.md):
- The input projection x @ W is hoisted out of the loop by the caller, so the loop
  only does h @ U per step.
- Per-step tensors are read and written through TensorArrays: slicing a captured
  tensor inside tf.while_loop measured 2.1x slower.
- The backward loop does only dz @ U^T per step; dU is one [H, T*B] x [T*B, G]
  matmul after the loop. This only pays under XLA, so both loops are jit-compiled.
"""

from __future__ import annotations

import functools
from typing import Protocol

import tensorflow as tf

from tf_zoneout import masks
from tf_zoneout.zoneout import mix


class Step(Protocol):
    """What ``forward``, ``backward`` and ``run`` need of a cell's step math (``LSTMStep``,
    ``GRUStep``, ``SimpleRNNStep``). A step is a frozen dataclass (hashable: ``canonical_step``
    keys traces by it) and holds no weights: the loop passes them in.

    With B the batch, H the units and G the width of the projections (4H for the LSTM, 3H for
    the GRU, H for the tanh RNN); ``state`` is a tuple of S tensors [B, H], state 0 being the
    output h (the LSTM's are (h, c), plus o' with output-gate zoneout).

    Attributes:
        num_saved: how many per-step tensors ``forward`` saves for ``backward``.
        has_backward: whether ``backward`` is exact for this step's activations (else ``run``
            differentiates ``forward`` with TensorFlow's autodiff).
        distinct_rec_grad: whether the gradient w.r.t. the recurrent projection differs from the
            one w.r.t. the input projection (the GRU's reset gate multiplies only the former).
    """

    num_saved: int
    has_backward: bool
    distinct_rec_grad: bool

    def forward(self, xw_t, rec_t, state, update=None):
        """One step before zoneout.

        Args:
            xw_t: [B, G] this step's input projection (bias included).
            rec_t: [B, G] h_{t-1} @ U (+ the recurrent bias).
            state: the S states before this step.
            update: input-gate dropout's factor on the new content ([B, H], [B, 1], scalar), or None.

        Returns:
            ``(candidates, saved)``: the S candidate states [B, H] (zoneout then mixes each with its
            previous value), and ``num_saved`` tensors [B, ...] for ``backward``.
        """

    def backward(self, d_candidates, saved, prev, update=None):
        """The step's gradients.

        Args:
            d_candidates: S gradients [B, H] w.r.t. the candidates (after zoneout's split).
            saved: what ``forward`` saved at this step.
            prev: the S states before it.
            update: as given to ``forward``.

        Returns:
            ``(d_prev, d_xw_t, d_rec_t)``: S gradients w.r.t. the previous states that do not go
            through ``rec_t`` (None where there is none), and [B, G] w.r.t. ``xw_t`` and ``rec_t``
            (the same tensor unless ``distinct_rec_grad``).
        """


def split_gradient(keep, d):
    """Split d(state) into (d(candidate), d(previous state)) for ``zoneout.mix``.

    Args:
        keep: the step's keep factor (None, a bool mask or a float factor).
        d: [B, H] gradient w.r.t. the mixed state.
    """
    if keep is None:
        return d, None
    if keep.dtype == tf.bool:
        kept = tf.where(keep, d, tf.zeros([], d.dtype))
        return d - kept, kept  # exact: kept is either d or 0
    return (1.0 - keep) * d, keep * d


class KeepReader:
    """Reads a state's keep factor at step t inside a ``tf.while_loop``: the one reader of every
    recurrence here (``forward``, ``backward`` and ``kernels.batch_norm_lstm``).

    Args:
        keep: None; a constant ([B, H], [B, 1] or scalar); a per-step tensor ([T, B, H] or
            [T, B, 1]), read through a TensorArray; or a ``HashedMask``, generated at each step
            from its hash (nothing stored: the backward pass regenerates the same bits).
        num_steps: T.
        state: a [B, H] tensor of the state it applies to (its shape and dtype, for hashed masks).
    """

    def __init__(self, keep, num_steps, state):
        self.keep = keep
        self.step_shape = tf.shape(state)
        self.dtype = state.dtype
        self.hashed = isinstance(keep, masks.HashedMask)
        self.per_step = not self.hashed and keep is not None and keep.shape.rank == 3
        if self.per_step:
            self.array = tf.TensorArray(keep.dtype, size=num_steps).unstack(keep)

    def read(self, t):
        if self.hashed:
            return masks.mask_at_step(self.keep, t, self.step_shape, self.dtype)
        return self.array.read(t) if self.per_step else self.keep


def _add_optional(a, b):
    return a if b is None else a + b


def _unstack(tensor, num_steps):
    return tf.TensorArray(tensor.dtype, size=num_steps, element_shape=tensor.shape[1:]).unstack(tensor)


def advance(step, xw_t, u, b_rec, state, keeps_t, update_t=None, rec_mask=None):
    """One step of the zoneout recurrence: the step's candidates from ``state``, mixed with it.

    The loop body of ``forward``, and on its own the loop-free step of ``ZoneoutLSTM.inference_step``
    (what the exports' ``step`` signature runs: no loop, no random op).

    Args:
        step: a ``Step``.
        xw_t: [B, G] this step's input projection (bias included).
        u: [H, G] recurrent kernel.
        b_rec: [G] recurrent bias or None.
        state: tuple of [B, H] states; state 0 is the output h.
        keeps_t: one keep factor per state for this step (None, a scalar, [B, H] or [B, 1]).
        update_t: this step's input-gate dropout factor, or None.
        rec_mask: [B, H] variational dropout factor on h before the matmul, or None.

    Returns:
        ``(new_state, saved)``: the zoned-out states and the values the backward pass keeps.
    """
    rec = tf.matmul(state[0] if rec_mask is None else state[0] * rec_mask, u)
    if b_rec is not None:
        rec = rec + b_rec
    candidates, saved = step.forward(xw_t, rec, state, update_t)
    return tuple(mix(k, s, c) for k, s, c in zip(keeps_t, state, candidates)), saved


def forward(step, xw, u, b_rec, state0, keeps, update=None, rec_mask=None, save=True):
    """Run ``step`` over time with zoneout on every state.

    Args:
        step: a ``Step`` (``LSTMStep``, ``GRUStep`` or ``SimpleRNNStep``).
        xw: [T, B, G] hoisted input projection (bias included).
        u: [H, G] recurrent kernel.
        b_rec: [G] recurrent bias or None.
        state0: tuple of [B, H] initial states; state 0 is the output h.
        rec_mask: [B, H] factor on h_{t-1} before the recurrent matmul (variational
            dropout, one mask per sequence), or None.
        update: factor on the step's new content (input-gate dropout: 1/0 masks in
            training, 1 - p at inference), in any form ``keeps`` takes; or None.
        keeps: tuple (one per state) of None, a constant keep factor ([B, H],
            [B, 1] or scalar), a per-step one ([T, B, H] or [T, B, 1]) or a
            ``masks.HashedMask``; bool masks or float factors, as ``zoneout.mix`` takes them.
        save: also return what the backward pass needs.

    Returns:
        ``(state_seqs, saved_seqs)``: a tuple of [T, B, H] zoned-out state
        sequences, and a tuple of [T, B, ...] saved step values (empty if not save).
    """
    num_steps = tf.shape(xw)[0]
    xw_ta = _unstack(xw, num_steps)
    readers = [KeepReader(k, num_steps, s) for k, s in zip(keeps, state0)]
    update_reader = KeepReader(update, num_steps, state0[0])
    # Element shapes given: converters (TFLite) need them to lower the tensor lists.
    state_tas = tuple(tf.TensorArray(s.dtype, size=num_steps, element_shape=s.shape) for s in state0)
    saved_tas = tuple(tf.TensorArray(xw.dtype, size=num_steps) for _ in range(step.num_saved)) if save else ()

    def body(t, state, state_tas, saved_tas):
        keeps_t = tuple(r.read(t) for r in readers)
        new_state, saved = advance(
            step, xw_ta.read(t), u, b_rec, state, keeps_t, update_reader.read(t), rec_mask
        )
        state_tas = tuple(ta.write(t, s) for ta, s in zip(state_tas, new_state))
        saved_tas = tuple(ta.write(t, s) for ta, s in zip(saved_tas, saved))
        return t + 1, new_state, state_tas, saved_tas

    _, _, state_tas, saved_tas = tf.while_loop(
        lambda t, *_: t < num_steps,
        body,
        (tf.constant(0), tuple(state0), state_tas, saved_tas),
        maximum_iterations=num_steps,
    )
    return tuple(ta.stack() for ta in state_tas), tuple(ta.stack() for ta in saved_tas)


def backward(step, d_seqs, d_final, u, state0, state_seqs, saved_seqs, keeps, update, rec_mask, xw_dtype):
    """Backpropagate through time for ``forward``.

    Args:
        step: the ``Step`` given to ``forward`` (``step.has_backward``).
        d_seqs: tuple (one per state) of [T, B, H] gradients w.r.t. the state
            sequences, or None for a state whose sequence is not used (state 0's
            sequence is the layer's output).
        d_final: tuple of [B, H] gradients w.r.t. the final states.
        u: [H, G] recurrent kernel, as passed to ``forward``.
        state0: the initial states, as passed to ``forward``.
        state_seqs: ``forward``'s state sequences.
        saved_seqs: ``forward``'s saved step values (``save=True``).
        keeps: as passed to ``forward``.
        update: as passed to ``forward``.
        rec_mask: as passed to ``forward``.
        xw_dtype: the dtype of ``xw`` (of the d_xw it returns).

    Returns:
        ``(d_xw [T, B, G], d_u [H, G], d_b_rec [G], d_state0 tuple)``.
    """
    num_steps = tf.shape(state_seqs[0])[0]
    readers = [KeepReader(_materialized(k, s, num_steps), num_steps, s) for k, s in zip(keeps, state0)]
    update_reader = KeepReader(_materialized(update, state0[0], num_steps), num_steps, state0[0])
    d_seq_tas = tuple(None if d is None else _unstack(d, num_steps) for d in d_seqs)
    # prev_seqs[t] = state before step t, i.e. [state0, states[:-1]].
    prev_seqs = tuple(tf.concat([s0[None], seq[:-1]], 0) for s0, seq in zip(state0, state_seqs))
    prev_tas = tuple(_unstack(p, num_steps) for p in prev_seqs)
    saved_tas = tuple(_unstack(s, num_steps) for s in saved_seqs)
    # One TensorArray for d_xw and, when the step's recurrent gradient differs
    # from its input gradient (GRU), a second for d_rec.
    grad_tas = tuple(
        tf.TensorArray(xw_dtype, size=num_steps) for _ in range(2 if step.distinct_rec_grad else 1)
    )

    # d_h_via_u (the dz @ U^T product) is carried on its own and added at the start
    # of the next step: adding it to other terms right after the matmul let XLA:CPU
    # fuse the add into the dot, which then ran on a slow emitter (+20% backward).
    def body(t, d_state, d_h_via_u, grad_tas):
        d_state = tuple(
            _add_optional(d + d_h_via_u if i == 0 else d, None if ta is None else ta.read(t))
            for i, (d, ta) in enumerate(zip(d_state, d_seq_tas))
        )
        split = [split_gradient(r.read(t), d) for r, d in zip(readers, d_state)]
        d_candidates = [c for c, _ in split]
        d_kept = [k for _, k in split]
        prev = tuple(ta.read(t) for ta in prev_tas)
        saved = tuple(ta.read(t) for ta in saved_tas)
        d_prev_step, d_xw_t, d_rec_t = step.backward(tuple(d_candidates), saved, prev, update_reader.read(t))
        grad_tas = (grad_tas[0].write(t, d_xw_t),) + tuple(ta.write(t, d_rec_t) for ta in grad_tas[1:])
        new_d_state = []
        for i, parts in enumerate(zip(d_kept, d_prev_step)):
            parts = [p for p in parts if p is not None]
            new_d_state.append(tf.add_n(parts) if parts else tf.zeros_like(d_state[i]))
        via_u = tf.matmul(d_rec_t, u, transpose_b=True)
        return t - 1, tuple(new_d_state), (via_u if rec_mask is None else via_u * rec_mask), grad_tas

    _, d_state0, d_h_via_u, grad_tas = tf.while_loop(
        lambda t, *_: t >= 0,
        body,
        (num_steps - 1, tuple(d_final), tf.zeros_like(d_final[0]), grad_tas),
        # The batch size of d_final may be static where the loop's is not (SavedModel traces).
        shape_invariants=(
            tf.TensorShape([]),
            tuple(tf.TensorShape([None, d.shape[-1]]) for d in d_final),
            tf.TensorShape([None, d_final[0].shape[-1]]),
            tuple(tf.TensorShape(None) for _ in grad_tas),
        ),
        maximum_iterations=num_steps,
    )
    d_state0 = (d_state0[0] + d_h_via_u,) + tuple(d_state0[1:])
    d_xw = grad_tas[0].stack()
    d_rec = grad_tas[-1].stack() if len(grad_tas) == 2 else d_xw
    d_u, d_b_rec = _recurrent_weight_gradients(prev_seqs[0], d_rec, u, rec_mask)
    return d_xw, d_u, d_b_rec, d_state0


def _materialized(keep, state, num_steps):
    """A hashed keep mask as a [T, B, H] tensor (other keeps as they are). The backward pass
    materialises hashed masks once rather than regenerating them per step: inside its loop XLA
    duplicated the hash into several fusions (+25%)."""
    if isinstance(keep, masks.HashedMask):
        return masks.materialize_factor(keep, tf.shape(state), num_steps, state.dtype)
    return keep


def _recurrent_weight_gradients(prev_h, d_rec, u, rec_mask):
    """(d_u [H, G], d_b_rec [G]) from the states before each step ``prev_h`` [T, B, H] and the
    gradients of the recurrent pre-activations ``d_rec`` [T, B, G]: one matmul over all steps."""
    prev_h = prev_h if rec_mask is None else prev_h * rec_mask
    flat_prev_h = tf.reshape(prev_h, [-1, u.shape[0]])
    flat_d_rec = tf.reshape(d_rec, [-1, u.shape[1]])
    return tf.matmul(flat_prev_h, flat_d_rec, transpose_a=True), tf.reduce_sum(flat_d_rec, 0)


@functools.cache
def _first_equal(step):
    return step


def canonical_step(step):
    """The first step object seen that equals ``step`` (steps are frozen dataclasses).

    Args:
        step: a ``Step``.

    tf.function keys a Python argument by identity (a weak reference), and layers build a
    new, equal step object at every call: without this, every eager call of a layer retraced
    the loop and, with XLA, compiled it again (0.7-0.9 s per call of a 32-unit LSTM). A step
    holding an unhashable custom activation is returned as it is (traced per call, as before)."""
    try:
        return _first_equal(step)
    except TypeError:
        return step


@functools.cache
def _compiled(jit_compile: bool):
    """One pair of tf.functions per jit setting; tf.function caches traces per step object."""
    fwd = tf.function(forward, jit_compile=jit_compile, autograph=False)
    bwd = tf.function(backward, jit_compile=jit_compile, autograph=False)
    return fwd, bwd


def _forward_autodiff(step, xw, u, b_rec, state0, keeps, update, rec_mask):
    state_seqs, _ = forward(step, xw, u, b_rec, state0, keeps, update, rec_mask, save=False)
    return state_seqs


# Never jit-compiled on its own: TensorFlow cannot differentiate an XLA-compiled
# while loop from outside it (TensorLists cannot cross the XLA boundary). Inside a
# caller's jit-compiled step it is compiled together with its gradient.
_autodiff = tf.function(_forward_autodiff, autograph=False)


def run(
    step,
    xw,
    u,
    b_rec,
    state0,
    keeps,
    update=None,
    rec_mask=None,
    all_states=False,
    hand_gradient=True,
    jit_compile=True,
    inference=False,
):
    """Zoneout recurrence, differentiable w.r.t. ``xw``, ``u``, ``b_rec`` and ``state0``.

    Args:
        step: step object; ``hand_gradient`` requires ``step.has_backward``.
        xw: [T, B, G] hoisted input projection (bias included).
        u: [H, G] recurrent kernel.
        b_rec: [G] recurrent bias or None.
        state0: tuple of [B, H] initial states.
        keeps: see ``forward``; they receive no gradient.
        update: see ``forward`` (input-gate dropout); no gradient.
        rec_mask: see ``forward`` (variational dropout); no gradient.
        all_states: return every state's sequence, not only the output's.
        hand_gradient: use the hand-written BPTT (else TensorFlow's autodiff).
        jit_compile: compile the hand-gradient loops with XLA.
        inference: no gradient is needed (an inference call): the loop runs inline in the caller's
            graph, saving nothing for a backward pass, with no function call and no custom gradient
            around it (what exports and converters see; autodiff still works through it).

    Returns:
        ``(outputs [T, B, H], final_states tuple of [B, H])``; outputs are the
        zoned-out h_t, the same tensors that are fed to step t + 1. With
        ``all_states``, ``outputs`` is the tuple of all state sequences.
    """
    step = canonical_step(step)
    state0 = tuple(state0)
    keeps = tuple(keeps)
    if inference:
        state_seqs, _ = forward(step, xw, u, b_rec, state0, keeps, update, rec_mask, save=False)
        return (state_seqs if all_states else state_seqs[0]), tuple(s[-1] for s in state_seqs)
    if not (hand_gradient and step.has_backward):
        state_seqs = _autodiff(step, xw, u, b_rec, state0, keeps, update, rec_mask)
        finals = tuple(s[-1] for s in state_seqs)
        return (state_seqs if all_states else state_seqs[0]), finals

    return _with_hand_gradient(step, xw, u, b_rec, state0, keeps, update, rec_mask, all_states, jit_compile)


def _with_hand_gradient(step, xw, u, b_rec, state0, keeps, update, rec_mask, all_states, jit_compile):
    """``run``'s training path: the forward loop under ``tf.custom_gradient`` whose gradient is the
    hand-written BPTT (both loops compiled with XLA when ``jit_compile``)."""
    fwd, bwd = _compiled(jit_compile)
    has_b_rec = b_rec is not None
    differentiable = (xw, u) + ((b_rec,) if has_b_rec else ()) + state0
    num_states = len(state0)

    @tf.custom_gradient
    def recurrence(*args):
        # stop_gradient keeps TensorFlow from building its own gradient of the
        # compiled loop (which would need TensorLists to cross the XLA boundary).
        args = [tf.stop_gradient(a) for a in args]
        xw_, u_ = args[0], args[1]
        b_rec_ = args[2] if has_b_rec else None
        state0_ = tuple(args[3:] if has_b_rec else args[2:])
        state_seqs, saved_seqs = fwd(step, xw_, u_, b_rec_, state0_, keeps, update, rec_mask)
        # Outputs: every state's sequence (all_states), or h's sequence and the
        # other states' final values.
        outputs = state_seqs if all_states else (state_seqs[0],) + tuple(s[-1] for s in state_seqs[1:])

        def grad(*d_outputs):
            if all_states:
                d_seqs = tuple(d_outputs)
                d_final = tuple(tf.zeros_like(s0) for s0 in state0_)
            else:
                d_seqs = (d_outputs[0],) + (None,) * (num_states - 1)
                d_final = (tf.zeros_like(state0_[0]),) + tuple(
                    tf.zeros_like(s0) if d is None else d for s0, d in zip(state0_[1:], d_outputs[1:])
                )
            if d_seqs[0] is None:
                d_seqs = (tf.zeros_like(state_seqs[0]),) + d_seqs[1:]
            d_xw, d_u, d_b_rec, d_state0 = bwd(
                step, d_seqs, d_final, u_, state0_, state_seqs, saved_seqs, keeps, update, rec_mask, xw_.dtype
            )
            return (d_xw, d_u) + ((d_b_rec,) if has_b_rec else ()) + tuple(d_state0)

        return outputs, grad

    results = recurrence(*differentiable)
    if all_states:
        return tuple(results), tuple(s[-1] for s in results)
    return results[0], (results[0][-1],) + tuple(results[1:])
