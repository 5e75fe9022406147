"""The fused kernels: forward against a NumPy reference, hand-written BPTT against autodiff."""

from __future__ import annotations

import zlib

import numpy as np
import pytest
import tensorflow as tf

from tf_zoneout import kernels, masks

T, B, H = 6, 3, 4
RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _data_of_the_test(request):
    """Each test draws its data from a generator seeded by its own name, so its data do not
    depend on which tests ran before it in the same worker (a ReLU case once met a
    pre-activation at the kink under one order of the tests and not under another)."""
    global RNG
    RNG = np.random.default_rng(zlib.crc32(request.node.name.encode()))


STEPS = {
    "lstm": (kernels.LSTMStep(kernels.resolve("tanh"), kernels.resolve("sigmoid")), 4, 2, False),
    "gru": (kernels.GRUStep(kernels.resolve("tanh"), kernels.resolve("sigmoid")), 3, 1, True),
    "simple_rnn": (kernels.SimpleRNNStep(kernels.resolve("tanh")), 1, 1, False),
    "simple_rnn_relu": (kernels.SimpleRNNStep(kernels.resolve("relu")), 1, 1, False),
}


def _sigmoid(x):
    return 1 / (1 + np.exp(-x))


def numpy_reference(name, xw, u, b_rec, state0, keeps, update=None, rec_mask=None):
    """Step-by-step NumPy recurrence with zoneout; keeps (and the input-gate dropout
    factor ``update``) are arrays broadcastable to [T, B, H]."""
    update = np.ones((xw.shape[0], 1, 1)) if update is None else update
    state = [np.array(s, np.float64) for s in state0]
    outputs = []
    for t in range(xw.shape[0]):
        rec = (state[0] * (1 if rec_mask is None else rec_mask)) @ u + (0 if b_rec is None else b_rec)
        if name == "lstm":
            i, f, g, o = np.split(xw[t] + rec, 4, -1)
            c = _sigmoid(f) * state[1] + update[t] * _sigmoid(i) * np.tanh(g)
            cand = [_sigmoid(o) * np.tanh(c), c]
        elif name == "gru":
            xz, xr, xh = np.split(xw[t], 3, -1)
            rz, rr, rh = np.split(rec, 3, -1)
            z, r = _sigmoid(xz + rz), _sigmoid(xr + rr)
            n = np.tanh(xh + r * rh)
            cand = [z * state[0] + (1 - z) * update[t] * n]
        else:
            pre = xw[t] + rec
            cand = [np.tanh(pre) if name == "simple_rnn" else np.maximum(pre, 0)]
        state = [k[t] * s + (1 - k[t]) * c for k, s, c in zip(keeps, state, cand)]
        outputs.append(state[0])
    return np.stack(outputs), state


def _problem(name, keep_kind):
    step, gates, n_states, has_b_rec = STEPS[name]
    xw = RNG.normal(size=(T, B, gates * H)).astype("float32")
    u = (RNG.normal(size=(H, gates * H)) * 0.5).astype("float32")
    b_rec = RNG.normal(size=(gates * H,)).astype("float32") if has_b_rec else None
    state0 = tuple(RNG.normal(size=(B, H)).astype("float32") for _ in range(n_states))
    if keep_kind == "per_step":
        keeps = tuple(RNG.random((T, B, H)) < 0.4 for _ in range(n_states))
    elif keep_kind == "static":
        keeps = tuple(RNG.random((B, H)) < 0.4 for _ in range(n_states))
    elif keep_kind == "padding":
        keeps = tuple(RNG.random((T, B, 1)) < 0.3 for _ in range(n_states))
    elif keep_kind in ("hashed", "hashed_static"):
        keeps = masks.hashed_masks([0.4, 0.2][:n_states], seed=9, per_step=keep_kind == "hashed")
    elif keep_kind == "expectation":
        keeps = tuple(np.float32(0.3) for _ in range(n_states))
    else:
        keeps = (None,) * n_states
    return step, xw, u, b_rec, state0, keeps


def _as_numpy_keeps(keeps):
    out = []
    for k in keeps:
        if isinstance(k, masks.HashedMask):
            k = masks.materialize(k, [B, H], T)
        out.append(
            np.zeros((T, 1, 1)) if k is None else np.broadcast_to(np.asarray(k, np.float64), (T, B, H))
        )
    return out


def _as_tf_keeps(keeps):
    return tuple(k if k is None or isinstance(k, masks.HashedMask) else tf.constant(k) for k in keeps)


KEEP_KINDS = ["none", "per_step", "static", "padding", "expectation", "hashed", "hashed_static"]


@pytest.mark.parametrize("keep_kind", KEEP_KINDS)
@pytest.mark.parametrize("name", list(STEPS))
def test_forward_matches_numpy(name, keep_kind):
    step, xw, u, b_rec, state0, keeps = _problem(name, keep_kind)
    tf_keeps = _as_tf_keeps(keeps)
    outputs, final = kernels.run(step, xw, u, b_rec, state0, tf_keeps)
    ref_out, ref_final = numpy_reference(name, xw, u, b_rec, state0, _as_numpy_keeps(keeps))
    np.testing.assert_allclose(outputs, ref_out, atol=1e-5)
    for a, b in zip(final, ref_final):
        np.testing.assert_allclose(a, b, atol=1e-5)


def assert_hand_gradient_matches_autodiff(step, xw, u, b_rec, state0, keeps, all_states=False, **run_kwargs):
    """Gradients of a loss on the kernel's outputs w.r.t. xw, u, b_rec and state0: hand == autodiff.

    The loss touches every output: the output sequence and the other final states, or
    (``all_states``) every state's sequence.
    """
    sources = [tf.constant(v) for v in (xw, u, *((b_rec,) if b_rec is not None else ()), *state0)]
    weights = [tf.constant(RNG.normal(size=(T, B, H)).astype("float32")) for _ in state0]
    results = []
    for hand in (True, False):
        with tf.GradientTape() as tape:
            tape.watch(sources)
            b = sources[2] if b_rec is not None else None
            s0 = tuple(sources[-len(state0) :])
            outputs, final = kernels.run(
                step,
                sources[0],
                sources[1],
                b,
                s0,
                keeps,
                all_states=all_states,
                hand_gradient=hand,
                **run_kwargs,
            )
            if all_states:
                loss = tf.add_n([tf.reduce_sum(tf.sin(s) * w) for s, w in zip(outputs, weights)])
            else:
                loss = tf.reduce_sum(tf.sin(outputs) * weights[0]) + tf.add_n(
                    [tf.reduce_sum(f * w[0]) for f, w in zip(final, weights)]
                )
        results.append(tape.gradient(loss, sources))
    for hand, auto in zip(*results):
        scale = np.abs(auto).max() + 1e-6
        np.testing.assert_allclose(np.asarray(hand) / scale, np.asarray(auto) / scale, atol=2e-6)


@pytest.mark.parametrize("keep_kind", KEEP_KINDS)
@pytest.mark.parametrize("name", list(STEPS))
def test_hand_written_gradient_matches_autodiff(name, keep_kind):
    step, xw, u, b_rec, state0, keeps = _problem(name, keep_kind)
    assert_hand_gradient_matches_autodiff(step, xw, u, b_rec, state0, _as_tf_keeps(keeps))


def swish(x):
    return x * tf.sigmoid(x)


def test_unknown_activation_falls_back_to_autodiff():
    step = kernels.SimpleRNNStep(kernels.resolve(swish))
    assert not step.has_backward
    xw = tf.constant(RNG.normal(size=(T, B, H)).astype("float32"))
    u = tf.constant(RNG.normal(size=(H, H)).astype("float32"))
    with tf.GradientTape() as tape:
        tape.watch([xw, u])
        outputs, _ = kernels.run(step, xw, u, None, (tf.zeros([B, H]),), (None,))
        loss = tf.reduce_sum(outputs)
    grads = tape.gradient(loss, [xw, u])
    assert all(np.all(np.isfinite(g)) for g in grads)


UPDATE_KINDS = ["hashed", "tensor", "scalar"]


def _update(kind):
    if kind == "hashed":
        (mask,) = masks.hashed_masks([0.6], seed=21, per_step=True)
        return mask, np.asarray(masks.materialize_factor(mask, [B, H], T), np.float64)
    if kind == "tensor":
        u = (RNG.random((T, B, H)) < 0.7).astype("float32")
        return tf.constant(u), u
    return tf.constant(0.7), np.full((T, B, H), 0.7)


@pytest.mark.parametrize("kind", UPDATE_KINDS)
@pytest.mark.parametrize("name", ["lstm", "gru", "simple_rnn"])
def test_input_gate_dropout_and_recurrent_mask_forward_and_gradients(name, kind):
    step, xw, u, b_rec, state0, keeps = _problem(name, "per_step")
    update, update_np = _update(kind) if name != "simple_rnn" else (None, None)
    rec_np = (RNG.random((B, H)) < 0.75) / 0.75
    rec_mask = tf.constant(rec_np.astype("float32"))
    tf_keeps = _as_tf_keeps(keeps)
    outputs, _ = kernels.run(step, xw, u, b_rec, state0, tf_keeps, update=update, rec_mask=rec_mask)
    ref, _ = numpy_reference(name, xw, u, b_rec, state0, _as_numpy_keeps(keeps), update_np, rec_np)
    np.testing.assert_allclose(outputs, ref, atol=1e-5)
    assert_hand_gradient_matches_autodiff(
        step, xw, u, b_rec, state0, tf_keeps, all_states=True, update=update, rec_mask=rec_mask
    )


@pytest.mark.parametrize("kind", UPDATE_KINDS)
def test_output_gate_zoneout_forward_and_gradients(kind):
    step = kernels.LSTMStep(kernels.resolve("tanh"), kernels.resolve("sigmoid"), output_gate_zoneout=True)
    _, xw, u, _, state0, keeps = _problem("lstm", "per_step")
    state0 = (*state0, RNG.random((B, H)).astype("float32"))
    tf_keeps = (*_as_tf_keeps(keeps), None)
    update, update_np = _update(kind)
    outputs, _ = kernels.run(step, xw, u, None, state0, tf_keeps, update=update)
    # NumPy: o'_t = d o_t + (1 - d) o'_{t-1}, h~ = o'_t tanh(c~_t), then zoneout on h and c.
    h, c, o_kept = (np.asarray(s, np.float64) for s in state0)
    keep_h, keep_c = _as_numpy_keeps(keeps)
    for t in range(T):
        i, f, g, o = np.split(xw[t] + h @ u, 4, -1)
        c_new = _sigmoid(f) * c + update_np[t] * _sigmoid(i) * np.tanh(g)
        o_kept = update_np[t] * _sigmoid(o) + (1 - update_np[t]) * o_kept
        h_new = o_kept * np.tanh(c_new)
        h = keep_h[t] * h + (1 - keep_h[t]) * h_new
        c = keep_c[t] * c + (1 - keep_c[t]) * c_new
        np.testing.assert_allclose(outputs[t], h, atol=1e-5)
    assert_hand_gradient_matches_autodiff(step, xw, u, None, state0, tf_keeps, all_states=True, update=update)


def test_canonical_step_interns_equal_steps_and_passes_unhashable_ones_through():
    from tf_zoneout.kernels import scan

    a = kernels.LSTMStep(kernels.resolve("tanh"), kernels.resolve("sigmoid"))
    b = kernels.LSTMStep(kernels.resolve("tanh"), kernels.resolve("sigmoid"))
    assert a is not b and scan.canonical_step(b) is scan.canonical_step(a)

    class Unhashable:
        __hash__ = None

    odd = Unhashable()
    assert scan.canonical_step(odd) is odd


@pytest.mark.parametrize("name", sorted(STEPS))
def test_every_step_has_the_written_step_interface(name):
    """Each step provides what ``scan.Step`` documents, with the same method parameters."""
    import inspect

    from tf_zoneout.kernels.scan import Step

    step = STEPS[name][0]
    hash(step)  # canonical_step keys traces by it
    for attribute in ("num_saved", "has_backward", "distinct_rec_grad"):
        assert isinstance(getattr(step, attribute), bool | int), attribute
    for method in ("forward", "backward"):
        expected = list(inspect.signature(getattr(Step, method)).parameters)[1:]
        assert list(inspect.signature(getattr(step, method)).parameters) == expected, method
