"""The kernel implementation choice: forced choices honoured, measurement, cache, equivalence."""

from __future__ import annotations

import json
import time

import numpy as np
import pytest
import tensorflow as tf

import tf_zoneout as tz
from tests.conftest import loss_and_grads
from tf_zoneout import kernel_choice


@pytest.fixture
def auto_mode(monkeypatch, tmp_path):
    """No forced implementation, an empty cache directory and an empty memory."""
    monkeypatch.delenv(kernel_choice.ENV_VAR, raising=False)
    monkeypatch.setenv(kernel_choice.CACHE_DIR_ENV, str(tmp_path))
    kernel_choice.clear_memory()
    yield tmp_path / kernel_choice.CACHE_FILE
    kernel_choice.clear_memory()


def sleeping_runners(seconds: dict, calls: list):
    def make_runner(name):
        calls.append(name)
        if seconds[name] is None:
            raise RuntimeError(f"{name} cannot run here")
        return lambda: time.sleep(seconds[name])

    return make_runner


def test_measurement_picks_the_faster_and_caches_it(auto_mode):
    calls = []
    choice = kernel_choice.choose("k", sleeping_runners({"xla": 0.004, "graph": 0.0005}, calls))
    assert choice == "graph" and sorted(calls) == ["graph", "xla"]
    record = json.loads(auto_mode.read_text())[kernel_choice.machine_signature()]["k"]
    assert record["choice"] == "graph" and record["median_ms"]["xla"] > record["median_ms"]["graph"]
    # Memory, then the file (a new process): no new measurement.
    assert kernel_choice.choose("k", sleeping_runners({}, calls)) == "graph"
    kernel_choice.clear_memory()
    assert kernel_choice.choose("k", sleeping_runners({}, calls)) == "graph"
    assert len(calls) == 2


def test_forced_by_the_environment(auto_mode, monkeypatch):
    calls = []
    for forced in ("graph", "xla"):
        monkeypatch.setenv(kernel_choice.ENV_VAR, forced.upper())
        assert kernel_choice.choose("k", sleeping_runners({"xla": 0.0, "graph": 0.0}, calls)) == forced
    assert calls == [] and not auto_mode.exists()
    monkeypatch.setenv(kernel_choice.ENV_VAR, "fastest")
    with pytest.raises(ValueError, match=r"TF_ZONEOUT_KERNEL='fastest'.*auto, xla, graph"):
        kernel_choice.choose("k", sleeping_runners({}, calls))


def test_an_implementation_that_fails_is_left_out(auto_mode):
    assert kernel_choice.choose("k", sleeping_runners({"xla": None, "graph": 0.001}, [])) == "graph"


def test_unreadable_cache_is_measured_again_and_rewritten(auto_mode):
    auto_mode.write_text("{not json")
    calls = []
    assert kernel_choice.choose("k", sleeping_runners({"xla": 0.0005, "graph": 0.003}, calls)) == "xla"
    entries = json.loads(auto_mode.read_text())[kernel_choice.machine_signature()]
    assert calls and entries["k"]["choice"] == "xla"


def test_no_measurement_where_it_cannot_run(auto_mode):
    calls = []
    assert kernel_choice.choose("k", sleeping_runners({}, calls), can_measure=False) == kernel_choice.DEFAULT
    assert calls == [] and not auto_mode.exists()


def test_jit_compile_argument_is_checked():
    with pytest.raises(ValueError, match=r"'auto'.*True.*False"):
        tz.ZoneoutLSTM(4, jit_compile="yes")


@pytest.mark.parametrize("forced", [True, False])
def test_a_layer_forced_by_its_argument_measures_nothing(auto_mode, forced):
    layer = tz.ZoneoutGRU(8, zoneout=0.2, seed=1, jit_compile=forced)
    layer(np.zeros([2, 3, 4], "float32"), training=True)
    assert not auto_mode.exists()


def test_an_auto_layer_measures_once_per_configuration_and_uses_the_choice(auto_mode, monkeypatch):
    layer = tz.ZoneoutLSTM(16, zoneout_cells=0.5, zoneout_states=0.05, return_sequences=True, seed=1)
    x = np.random.default_rng(0).normal(size=[4, 6, 3]).astype("float32")

    @tf.function  # measured while this is traced
    def step(x):
        with tf.GradientTape() as tape:
            loss = tf.reduce_sum(layer(x, training=True))
        return tape.gradient(loss, layer.trainable_variables)

    assert all(g is not None for g in step(x))
    entries = json.loads(auto_mode.read_text())[kernel_choice.machine_signature()]
    ((key, record),) = entries.items()
    assert key.startswith("ZoneoutLSTM batch=4 float32 training") and '"zoneout_cells": true' in key
    assert set(record["median_ms"]) == {"xla", "graph"}
    # Another layer of the same configuration reuses the choice; inference measures nothing: it
    # runs the graph loop, which exports and converters can read (never an XLA function).
    seen = []
    monkeypatch.setattr(kernel_choice, "measure", lambda *a, **k: seen.append(a) or {})
    other = tz.ZoneoutLSTM(16, zoneout_cells=0.25, zoneout_states=0.5, return_sequences=True, seed=9)
    other(x, training=True)
    assert seen == []
    other(x, training=False)
    assert seen == [] and other.kernel_implementation == "graph"
    forced = tz.ZoneoutLSTM(16, zoneout_cells=0.25, return_sequences=True, jit_compile=True)
    forced(x, training=False)
    assert forced.kernel_implementation == "graph"
    # The recorded choice is what the layer runs.
    monkeypatch.setattr(kernel_choice, "cached_choice", lambda key, device=None: "graph")
    assert layer._use_xla(tf.constant(x), True, masked=False) is False


LAYERS = {
    "lstm": lambda jit: tz.ZoneoutLSTM(
        12, zoneout_cells=0.5, zoneout_states=0.05, input_gate_dropout=0.25, output_gate_zoneout=True,
        return_sequences=True, return_state=True, seed=3, jit_compile=jit,
    ),
    "gru": lambda jit: tz.ZoneoutGRU(12, zoneout=0.2, return_sequences=True, seed=3, jit_compile=jit),
    "simple_rnn": lambda jit: tz.ZoneoutSimpleRNN(
        12, zoneout=0.3, stochastic_depth=0.1, return_sequences=True, seed=3, jit_compile=jit
    ),
}  # fmt: skip


@pytest.mark.parametrize("name", sorted(LAYERS))
@pytest.mark.parametrize("padded", [False, True], ids=["dense", "padded"])
def test_every_implementation_gives_the_same_outputs_and_gradients(name, padded):
    x = np.random.default_rng(1).normal(size=[3, 7, 5]).astype("float32")
    mask = np.array([[True] * 7, [True] * 4 + [False] * 3, [True] * 6 + [False]]) if padded else None
    results = {}
    for jit in (True, False):
        layer = LAYERS[name](jit)
        layer(x)
        rng = np.random.default_rng(2)
        layer.set_weights([rng.normal(scale=0.4, size=w.shape) for w in layer.get_weights()])
        results[jit] = loss_and_grads(layer, x, training=True, mask=mask)
    for xla, graph in zip(results[True][0], results[False][0], strict=True):
        np.testing.assert_allclose(xla, graph, rtol=1e-5, atol=1e-6)
    for xla, graph in zip(results[True][1], results[False][1], strict=True):
        np.testing.assert_allclose(xla, graph, rtol=1e-4, atol=1e-5)


def test_measures_inside_a_retraced_function(auto_mode, caplog):
    """A tf.function traced a second time (a new batch size) forbids creating variables in its
    trace; the measurement runs in a thread of its own, so it still works (it did not when it ran
    under tf.init_scope: seen in a training run's evaluation)."""
    layer = tz.ZoneoutGRU(8, zoneout=0.1, seed=1, return_sequences=True)
    call = tf.function(lambda x: layer(x, training=True))
    with caplog.at_level("WARNING", logger="tf_zoneout"):
        call(tf.zeros([2, 5, 3]))
        call(tf.zeros([4, 5, 3]))
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    keys = json.loads(auto_mode.read_text())[kernel_choice.machine_signature()]
    assert sorted(k.split()[1] for k in keys) == ["batch=2", "batch=4"]


def test_the_batch_norm_lstm_is_measured_too(auto_mode, caplog):
    layer = tz.RecurrentBatchNormLSTM(8, zoneout_cells=0.2, seed=1)
    with caplog.at_level("WARNING", logger="tf_zoneout"):
        layer(np.zeros([3, 4, 2], "float32"), training=True)
    assert not [r for r in caplog.records if "failed" in r.getMessage()]
    assert layer.kernel_implementation in kernel_choice.IMPLEMENTATIONS
    (key,) = json.loads(auto_mode.read_text())[kernel_choice.machine_signature()]
    assert key.startswith("RecurrentBatchNormLSTM batch=3 float32 training")


# -- Keras's own path (cuDNN on a GPU) where a call computes exactly Keras's layer ----------------

A_GPU = {
    "kind": "gpu",
    "model": "NVIDIA H200",
    "compute_capability": "9.0",
    "driver": "570.1",
    "cuda": "12.5",
    "cudnn": "9",
}


@pytest.fixture
def a_gpu(monkeypatch):
    """Device detection that answers "an H200" (the layers' math still runs on this CPU)."""
    monkeypatch.setattr(kernel_choice, "device_description", lambda device=None: dict(A_GPU))


@pytest.mark.parametrize(
    ("layer", "training", "expected"),
    [
        (lambda: tz.ZoneoutLSTM(4), True, True),
        (lambda: tz.ZoneoutLSTM(4, zoneout_cells=0.1), True, False),
        (lambda: tz.ZoneoutLSTM(4, zoneout_cells=0.1), False, False),
        (lambda: tz.ZoneoutLSTM(4, zoneout_cells=0.1, zoneout_inference="deterministic"), False, True),
        (lambda: tz.ZoneoutLSTM(4, zoneout_cells=0.1, zoneout_inference="deterministic"), None, True),
        (lambda: tz.ZoneoutLSTM(4, weight_noise=0.1), True, False),
        (lambda: tz.ZoneoutLSTM(4, weight_noise=0.1), False, True),
        (lambda: tz.ZoneoutLSTM(4, variational_dropout=0.2), False, True),
        (lambda: tz.ZoneoutLSTM(4, input_gate_dropout=0.2), False, False),
        (lambda: tz.ZoneoutLSTM(4, use_cudnn=False), True, False),
        (lambda: tz.ZoneoutGRU(4, stochastic_depth=0.1), False, False),
        (lambda: tz.ZoneoutGRU(4, norm_stabilizer=1.0), False, True),
        (lambda: tz.ZoneoutSimpleRNN(4, zoneout=0.3), tf.constant(True), False),
        (lambda: tz.ZoneoutSimpleRNN(4), tf.constant(True), True),
    ],
)
def test_which_calls_compute_exactly_keras(layer, training, expected):
    assert layer().computes_keras(training) is expected
    assert layer().computes_keras(training, mask=tf.ones([1, 2], tf.bool)) is False


@pytest.mark.parametrize(
    ("ours", "keras_layer"),
    [
        (
            lambda: tz.ZoneoutLSTM(16, return_sequences=True),
            lambda: tf.keras.layers.LSTM(16, return_sequences=True),
        ),
        (
            lambda: tz.ZoneoutGRU(16, return_sequences=True),
            lambda: tf.keras.layers.GRU(16, return_sequences=True),
        ),
        (lambda: tz.ZoneoutSimpleRNN(16), lambda: tf.keras.layers.SimpleRNN(16)),
    ],
    ids=["lstm", "gru", "simple_rnn"],
)
def test_on_a_gpu_a_call_that_computes_keras_runs_keras_path_unmeasured(
    auto_mode, a_gpu, monkeypatch, ours, keras_layer
):
    monkeypatch.setattr(kernel_choice, "measure", lambda *a, **k: pytest.fail("measured"))
    x = np.random.default_rng(0).normal(size=[4, 6, 3]).astype("float32")
    layer, reference = ours(), keras_layer()
    layer(x)
    reference(x)
    reference.set_weights(layer.get_weights())
    with tf.GradientTape(persistent=True) as tape:
        got, want = layer(x, training=True), reference(x, training=True)
    assert layer.kernel_implementation == "keras"
    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)
    for a, b in zip(
        tape.gradient(got, layer.trainable_variables),
        tape.gradient(want, reference.trainable_variables),
        strict=True,
    ):
        np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_on_a_gpu_zoneout_forced_choices_and_padding_keep_the_fused_loop(auto_mode, a_gpu, monkeypatch):
    x = np.zeros([2, 5, 3], "float32")
    monkeypatch.setattr(kernel_choice, "measure", lambda *a, **k: {})  # nothing measurable: DEFAULT
    zoned = tz.ZoneoutLSTM(8, zoneout_cells=0.5, seed=1)
    zoned(x, training=True)
    assert zoned.kernel_implementation == kernel_choice.DEFAULT
    exported = tz.ZoneoutLSTM(8, jit_compile=False)  # how exports build their layers: portable
    exported(x, training=True)
    assert exported.kernel_implementation == "graph"
    padded = tz.ZoneoutLSTM(8)
    padded(x, mask=np.array([[True] * 5, [True] * 3 + [False] * 2]), training=True)
    assert padded.kernel_implementation == kernel_choice.DEFAULT


def test_off_a_gpu_keras_path_is_one_more_measured_candidate(auto_mode):
    plain, zoned = tz.ZoneoutGRU(8, seed=1), tz.ZoneoutGRU(8, zoneout=0.3, seed=1)
    for layer in (plain, zoned):
        layer(np.zeros([2, 5, 3], "float32"), training=True)
    records = json.loads(auto_mode.read_text())[kernel_choice.machine_signature()]
    measured = {('"zoneout": true' in key): set(record["median_ms"]) for key, record in records.items()}
    assert measured == {False: {"xla", "graph", "keras"}, True: {"xla", "graph"}}


def test_the_cache_is_keyed_by_the_device_kind(auto_mode, monkeypatch):
    cpu = kernel_choice.machine_signature()
    assert kernel_choice.cpu_description()["model"] in cpu and "CUDA" not in cpu
    monkeypatch.setattr(kernel_choice, "device_description", lambda device=None: dict(A_GPU))
    gpu = kernel_choice.machine_signature("/device:GPU:0")
    assert gpu.startswith("NVIDIA H200 | cc 9.0 | driver 570.1 | CUDA 12.5 | cuDNN 9")
    kernel_choice.choose("k", sleeping_runners({"xla": 0.003, "graph": 0.0005}, []), device="/device:GPU:0")
    assert set(json.loads(auto_mode.read_text())) == {gpu}


def test_the_measurement_runs_on_the_layers_device(auto_mode):
    placed = []

    def make_runner(name):
        placed.append(tf.zeros([1]).device)
        return lambda: None

    kernel_choice.choose("k", make_runner, device="/device:CPU:0")
    assert placed and all(p.endswith("CPU:0") for p in placed)
    layer = tz.ZoneoutLSTM(4, zoneout_cells=0.2)
    with tf.device("/device:CPU:0"):
        layer(np.zeros([1, 2, 3], "float32"))
    assert kernel_choice.weights_device(layer).endswith("CPU:0")
