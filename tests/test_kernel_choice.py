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
    # Another layer of the same configuration reuses the choice; inference is its own entry.
    seen = []
    monkeypatch.setattr(kernel_choice, "measure", lambda *a, **k: seen.append(a) or {})
    other = tz.ZoneoutLSTM(16, zoneout_cells=0.25, zoneout_states=0.5, return_sequences=True, seed=9)
    other(x, training=True)
    assert seen == []
    other(x, training=False)
    assert len(seen) == 1
    # The recorded choice is what the layer runs.
    monkeypatch.setattr(kernel_choice, "cached_choice", lambda key: "graph")
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
    call = tf.function(lambda x: layer(x, training=False))
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
