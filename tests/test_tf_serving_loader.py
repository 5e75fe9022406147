"""Exports load and answer the way TF Serving loads them: TensorFlow's C++ loader and session loader.

TF Serving's binary cannot be installed here; it links TensorFlow's C++ ``LoadSavedModel``, which
the C API's ``TF_LoadSessionFromSavedModel`` calls (``tests/cc_loader.py``), so that is what
these tests load through, in a fresh process, alongside ``tf.compat.v1.saved_model.load``.
"""

from __future__ import annotations

import pickle
import subprocess
import sys
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from cc_loader import CcLoaderError, CcSavedModel
from conftest import SERVED
from serving_probe import cases_for

import tf_zoneout as tz
from tf_zoneout import export as export_lib
from tf_zoneout.saved_model import export_graph, signatures
from tf_zoneout.saved_model.model_base import WARMUP_FILE, ModelKind, read_metadata

PROBE = Path(__file__).with_name("serving_probe.py")


@pytest.fixture(scope="module")
def probed(model_base, tmp_path_factory):
    """What the fresh-process probe saw for every model of the served model base."""
    out = tmp_path_factory.mktemp("probe") / "probed.pickle"
    result = subprocess.run(
        [sys.executable, str(PROBE), str(model_base), str(out)], capture_output=True, text=True, timeout=600
    )
    assert result.returncode == 0, result.stderr[-4000:]
    return pickle.loads(out.read_bytes())


def assert_same_outputs(expected: dict, actual: dict, what: str):
    assert set(expected) == set(actual), what
    for key in expected:
        assert export_lib.same_values(expected[key], actual[key]), f"{what}: output {key!r} differs"


def test_every_signature_of_every_kind_answers_through_both_loaders_as_in_python(probed, model_base):
    assert set(probed) == set(SERVED)
    assert {p["kind"] for p in probed.values()} == {"language_model", "seq2seq", "classifier"}
    for name, seen in probed.items():
        python = tf.saved_model.load(str(model_base / name / "1"))
        assert seen["signatures"] == sorted(python.signatures)
        cases_of_kind = cases_for(seen["kind"], read_metadata(model_base / name / "1"))
        assert set(cases_of_kind) == set(python.signatures), f"{name}: every signature is probed"
        for signature, cases in cases_of_kind.items():
            for k, inputs in enumerate(cases):
                expected = python.signatures[signature](**{key: tf.constant(v) for key, v in inputs.items()})
                expected = {key: value.numpy() for key, value in expected.items()}
                what = f"{name}.{signature} case {k}"
                assert_same_outputs(expected, seen["cc"][signature][k], f"{what} (C++ loader)")
                assert_same_outputs(expected, seen["session"][signature][k], f"{what} (session loader)")


def test_odd_inputs_get_answers_not_errors(probed):
    """Empty, whitespace-only and all-unknown texts score 0 tokens (a word model: one <unk>) and
    still generate."""
    for seen in probed.values():
        if seen["kind"] == "language_model":
            scored = seen["cc"]["score"][0]
            assert scored["num_tokens"][1] == 0 and scored["nll"][1] == 0  # ""
            unknown = (0, 2) if seen["level"] == "char" else (1, 1)  # two unknown chars; one unknown word
            assert (scored["num_tokens"][3], scored["num_unknown"][3]) == unknown
            generated = seen["cc"]["serving_default"][0]
            assert list(generated["num_tokens"]) == [5, 3, 0, 4, 6]
            assert generated["text"][2] == b""  # max_new_tokens 0
        if seen["kind"] == "classifier":
            for answer in seen["cc"]["serving_default"]:
                np.testing.assert_allclose(answer["probabilities"].sum(axis=1), 1.0, rtol=1e-5)


def test_warmup_requests_cover_every_signature_and_replay_through_the_cc_loader(probed, model_base):
    from tensorflow_serving.apis import prediction_log_pb2

    for name, seen in probed.items():
        path = model_base / name / "1" / WARMUP_FILE
        logs = [
            prediction_log_pb2.PredictionLog.FromString(r)
            for r in tf.data.TFRecordDataset(str(path)).as_numpy_iterator()
        ]
        assert sorted(log.predict_log.request.model_spec.signature_name for log in logs) == seen["signatures"]
        assert seen["warmup_replayed"] == len(logs)


def test_exports_hold_no_device_specific_or_random_op_where_answers_must_not_vary(model_base):
    deterministic = {
        "language_model": ["score", "step", "tokenize", "read"],
        "seq2seq": ["serving_default"],
        "classifier": ["serving_default"],
    }
    for name in SERVED:
        directory = model_base / name / "1"
        assert export_graph.problems(directory, deterministic[read_metadata(directory)["kind"]]) == []
        for signature in set(read_metadata(directory)["signatures"]) - {"tokenize"}:  # no model in it
            ops = export_graph.signature_ops(directory, signature)
            assert "MatMul" in ops or "BatchMatMulV2" in ops, "the walk reaches into the model's functions"
            assert not {op for op in ops if export_graph.DEVICE_SPECIFIC.match(op)}


def _save_plain(function, directory, signature="serving_default"):
    module = tf.Module()
    module.f = function
    tf.saved_model.save(module, str(directory), signatures={signature: function})
    return directory


def test_the_graph_check_finds_xla_random_and_stateful_random_ops(tmp_path):
    spec = [tf.TensorSpec([None], tf.float32, name="x")]
    xla = tf.function(lambda x: {"y": x * 2.0}, input_signature=spec, jit_compile=True)
    random = tf.function(lambda x: {"y": x + tf.random.uniform(tf.shape(x))}, input_signature=spec)
    seeded = tf.function(
        lambda x: {"y": x + tf.random.stateless_uniform(tf.shape(x), seed=[1, 2])}, input_signature=spec
    )
    assert any("XLA" in p for p in export_graph.problems(_save_plain(xla, tmp_path / "xla")))
    random_dir = _save_plain(random, tmp_path / "random")
    assert any("stateful random" in p for p in export_graph.problems(random_dir))
    seeded_dir = _save_plain(seeded, tmp_path / "seeded")
    assert export_graph.problems(seeded_dir) == []  # generation may sample from its seed
    assert any("must be deterministic" in p for p in export_graph.problems(seeded_dir, ["serving_default"]))


class _XlaModule:
    """A classifier's export module whose signature is compiled with XLA: what a jit_compile model
    would export."""

    kind = ModelKind.CLASSIFIER

    def __init__(self):
        self.resources, self.deterministic = [], ("serving_default",)
        self.variable = tf.Variable(tf.ones([784, 10]))

        def classify(pixels):
            probabilities = tf.nn.softmax(pixels @ self.variable)
            return {"probabilities": probabilities, "label": tf.argmax(probabilities, axis=-1)}

        self.signatures = {
            "serving_default": tf.function(
                classify, input_signature=signatures.CLASSIFY.tensor_specs(), jit_compile=True
            )
        }
        self.warmup = {"serving_default": {"pixels": np.ones([1, 784], np.float32)}}


def test_an_export_that_would_not_serve_portably_is_refused_and_leaves_nothing(tmp_path):
    with pytest.raises(export_lib.ExportError, match="XLA"):
        export_lib._save(_XlaModule(), tmp_path / "export", {})
    assert list(tmp_path.iterdir()) == []


def _keras_model():
    model = keras.Sequential(
        [
            keras.Input((None, 3)),
            tz.ZoneoutLSTM(8, zoneout_cells=0.5, zoneout_states=0.1, seed=1),
            keras.layers.Dense(2),
        ]
    )
    model(np.zeros([1, 4, 3], "float32"))
    return model


def test_the_tf_module_pattern_of_earlier_exports_fails_in_the_cc_loader_and_the_export_check(tmp_path):
    """The cause of the bug these exports had, kept as a control: a tf.Module holding a Keras 3 model
    and saved with tf.saved_model.save answers in Python but not in the C++ loader, whose saver
    restores the Keras variable wrappers while the signature reads the tf.Variables inside them. The
    export's own check (TensorFlow's session-based loader, no C API) refuses it the same way."""
    model = _keras_model()
    module = tf.Module()
    module.model = model
    module.model_variables = list(model.variables)
    spec = [tf.TensorSpec([None, None, 3], tf.float32, name="x")]
    module.predict = tf.function(lambda x: {"y": model(x, training=False)}, input_signature=spec)
    tf.saved_model.save(module, str(tmp_path / "old"), signatures={"serving_default": module.predict})
    x = np.ones([2, 4, 3], np.float32)
    python = tf.saved_model.load(str(tmp_path / "old")).signatures["serving_default"](x=tf.constant(x))
    np.testing.assert_allclose(python["y"].numpy(), model(x).numpy(), rtol=1e-5, atol=1e-6)
    with (
        CcSavedModel(tmp_path / "old") as loaded,
        pytest.raises(CcLoaderError, match="Could not find variable"),
    ):
        loaded.run("serving_default", {"x": x})
    module.signatures, module.warmup = {"serving_default": module.predict}, {"serving_default": {"x": x}}
    with pytest.raises(export_lib.ExportError, match="Could not find variable"):
        export_lib._check_servable(module, tmp_path / "old")


def test_a_users_keras_export_with_zoneout_layers_serves_through_the_cc_loader(tmp_path):
    model = _keras_model()
    model.export(str(tmp_path / "users_model" / "1"), verbose=False)
    x = np.random.default_rng(3).normal(size=[2, 5, 3]).astype(np.float32)
    with CcSavedModel(tmp_path / "users_model" / "1") as loaded:
        (key,) = loaded.signatures["serving_default"].inputs
        outputs = loaded.run("serving_default", {key: x})
    (served,) = outputs.values()
    np.testing.assert_allclose(served, model(x, training=False).numpy(), rtol=1e-5, atol=1e-6)


def test_cc_loader_errors_name_the_problem(tmp_path, model_base):
    with pytest.raises(CcLoaderError, match="TF_LoadSessionFromSavedModel"):
        CcSavedModel(tmp_path)  # no SavedModel here
    classifier = next(name for name, task in SERVED.items() if task == "pmnist")
    with CcSavedModel(model_base / classifier / "1") as loaded:
        with pytest.raises(KeyError, match="no signature 'score'"):
            loaded.run("score", {})
        with pytest.raises(KeyError, match="takes inputs"):
            loaded.run("serving_default", {"image": np.zeros([1, 784], np.float32)})
        with pytest.raises(ValueError, match=r"input 'pixels' has shape \[None, 784\]; got \[1, 5\]"):
            loaded.run("serving_default", {"pixels": np.zeros([1, 5], np.float32)})


def test_the_grpc_stand_in_serves_only_what_the_cc_loader_serves(tmp_path):
    """The stub of TF Serving loads through the C++ loader, so it refuses what TF Serving would."""
    import grpc
    import tf_serving_stub
    from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc

    model = _keras_model()
    module = tf.Module()
    module.model, module.model_variables = model, list(model.variables)
    spec = [tf.TensorSpec([None, None, 3], tf.float32, name="x")]
    module.predict = tf.function(lambda x: {"y": model(x, training=False)}, input_signature=spec)
    tf.saved_model.save(module, str(tmp_path / "old" / "1"), signatures={"serving_default": module.predict})
    model.export(str(tmp_path / "new" / "1"), verbose=False)
    server, address = tf_serving_stub.start(tmp_path)
    try:
        stub = prediction_service_pb2_grpc.PredictionServiceStub(grpc.insecure_channel(address))
        x = np.ones([1, 4, 3], np.float32)
        answers = {}
        for name in ("old", "new"):
            request = predict_pb2.PredictRequest()
            request.model_spec.name, request.model_spec.version.value = name, 1
            (key,) = (
                export_graph.read_meta_graph(tmp_path / name / "1").signature_def["serving_default"].inputs
            )
            request.inputs[key].CopyFrom(tf.make_tensor_proto(x))
            try:
                answers[name] = stub.Predict(request, timeout=60)
            except grpc.RpcError as error:
                answers[name] = error
        assert (
            isinstance(answers["old"], grpc.RpcError)
            and "Could not find variable" in answers["old"].details()
        )
        (output,) = answers["new"].outputs.values()
        np.testing.assert_allclose(tf.make_ndarray(output), model(x).numpy(), rtol=1e-5, atol=1e-6)
    finally:
        server.stop(None)
