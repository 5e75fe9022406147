"""Users' Keras models holding tf-zoneout layers leave TensorFlow whatever the kernel choice did:
``model.export()`` after the layers ran with XLA (the suite forces ``TF_ZONEOUT_KERNEL=xla``, the
choice "auto" makes on an AMD CPU) gives a graph without XLA functions, which the real converters
take: tf2onnx's command line (then onnxruntime) with dynamic batch and time, and the TFLite converter
with builtin ops only at batch 1 and dynamic time (then LiteRT, XNNPack on)."""

from __future__ import annotations

import subprocess
import sys

import keras
import numpy as np
import pytest
import tensorflow as tf

import tf_zoneout as tz
from tf_zoneout.saved_model import export_graph

LAYERS = {
    "ZoneoutLSTM": lambda jit: tz.ZoneoutLSTM(
        8, zoneout_cells=0.3, zoneout_states=0.2, return_sequences=True, jit_compile=jit
    ),
    "ZoneoutGRU": lambda jit: tz.ZoneoutGRU(8, zoneout=0.2, return_sequences=True, jit_compile=jit),
    "ZoneoutSimpleRNN": lambda jit: tz.ZoneoutSimpleRNN(
        8, zoneout=0.2, return_sequences=True, jit_compile=jit
    ),
    "ZoneoutWrapper": lambda jit: keras.layers.RNN(
        tz.ZoneoutWrapper(keras.layers.LSTMCell(8), zoneout=0.2), return_sequences=True
    ),
    "RecurrentBatchNormLSTM": lambda jit: tz.RecurrentBatchNormLSTM(
        8, zoneout_cells=0.2, zoneout_states=0.2, max_timesteps=10, return_sequences=True, jit_compile=jit
    ),
}
CASES = [(name, "auto") for name in LAYERS] + [("ZoneoutLSTM", True)]


def trained_model(name: str, jit) -> keras.Model:
    """A small model around the layer, fitted for one epoch (the kernel choice has run)."""
    model = keras.Sequential([keras.Input([None, 3], name="x"), LAYERS[name](jit), keras.layers.Dense(2)])
    x = np.random.default_rng(0).normal(size=[4, 6, 3]).astype("float32")
    model.compile("adam", "mse")
    model.fit(x, np.zeros([4, 6, 2], "float32"), epochs=1, verbose=0)
    return model


@pytest.mark.parametrize(("name", "jit"), CASES, ids=[f"{n}-jit_{j}" for n, j in CASES])
def test_a_users_model_exports_converts_and_runs_equal_to_keras(name, jit, tmp_path):
    model = trained_model(name, jit)
    inputs = [np.random.default_rng(k).normal(size=shape).astype("float32") for k, shape in
              enumerate([(4, 6, 3), (2, 9, 3), (1, 6, 3), (1, 3, 3)])]  # fmt: skip
    expected = [model(x, training=False).numpy() for x in inputs]
    exported = tmp_path / "export"
    model.export(str(exported), verbose=False)
    assert export_graph.problems(exported) == []  # no XLA function, no device-specific op
    # tf2onnx's command line, as users run it, then onnxruntime: dynamic batch and time.
    onnx_file = tmp_path / "model.onnx"
    command = [
        sys.executable,
        "-m",
        "tf2onnx.convert",
        "--saved-model",
        str(exported),
        "--output",
        str(onnx_file),
    ]
    converted = subprocess.run([*command, "--opset", "17"], capture_output=True, text=True, timeout=300)
    assert converted.returncode == 0, converted.stderr[-3000:]
    import onnxruntime

    session = onnxruntime.InferenceSession(str(onnx_file), providers=["CPUExecutionProvider"])
    (input_name,) = [i.name for i in session.get_inputs()]
    for x, want in zip(inputs, expected):
        np.testing.assert_allclose(session.run(None, {input_name: x})[0], want, atol=1e-5)
    # TFLite with builtin ops only, at batch 1 and dynamic time; LiteRT with XNNPack (its default).
    batch_one = tmp_path / "batch_one"
    model.export(
        str(batch_one), input_signature=[tf.TensorSpec([1, None, 3], tf.float32, name="x")], verbose=False
    )
    converter = tf.lite.TFLiteConverter.from_saved_model(str(batch_one))
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    from ai_edge_litert.interpreter import Interpreter

    run = Interpreter(model_content=converter.convert()).get_signature_runner()
    for x, want in zip(inputs[2:], expected[2:]):
        (found,) = run(x=x).values()
        np.testing.assert_allclose(found, want, atol=1e-5)


def test_inference_calls_never_open_an_xla_function(tmp_path):
    """The cause of exports that converted in one process and not in another: an inference call
    traced with the kernel choice's "xla" held an XLA-compiled function. Inference runs the graph
    loop, whatever was chosen or forced; training keeps the choice."""
    layer = tz.ZoneoutGRU(4, zoneout=0.2, jit_compile=True)
    x = np.zeros([2, 3, 2], "float32")
    layer(x, training=True)
    assert layer.kernel_implementation == "xla"
    layer(x, training=False)
    assert layer.kernel_implementation == "graph"
    graph = tf.function(lambda x: layer(x, training=False)).get_concrete_function(
        tf.TensorSpec([None, None, 2])
    )
    functions = graph.graph.as_graph_def().library.function
    assert not any(f.attr["_XlaMustCompile"].b for f in functions)
