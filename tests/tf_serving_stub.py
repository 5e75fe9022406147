"""A stand-in for TF Serving's gRPC PredictionService, for tests (TF Serving cannot be installed here).

It serves MODEL_BASE/NAME/VERSION SavedModels through the real ``tensorflow-serving-api``
protocol (``PredictionService/Predict``: model_spec name, version, signature_name;
TensorProto inputs and outputs), running each signature in-process. What it does not
reproduce: TF Serving's own batching, version policy and model loading.
"""

from __future__ import annotations

from concurrent import futures
from pathlib import Path

import grpc
import tensorflow as tf
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model_base: Path):
        self.model_base = Path(model_base)
        self.loaded = {}

    def _model(self, name: str, version: int):
        key = (name, version)
        if key not in self.loaded:
            self.loaded[key] = tf.saved_model.load(str(self.model_base / name / str(version)))
        return self.loaded[key]

    def Predict(self, request, context):  # noqa: N802 (the gRPC method name)
        spec = request.model_spec
        path = self.model_base / spec.name / str(spec.version.value)
        if not (path / "saved_model.pb").exists():
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"servable {spec.name} version {spec.version.value} not found"
            )
        signature = self._model(spec.name, spec.version.value).signatures[
            spec.signature_name or "serving_default"
        ]
        inputs = {k: tf.constant(tf.make_ndarray(v)) for k, v in request.inputs.items()}
        outputs = signature(**inputs)
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value.numpy()))
        return response


def start(model_base: Path) -> tuple[grpc.Server, str]:
    """Start the stub on a free loopback port; returns (server, "127.0.0.1:PORT")."""
    server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
    prediction_service_pb2_grpc.add_PredictionServiceServicer_to_server(
        PredictionServicer(model_base), server
    )
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return server, f"127.0.0.1:{port}"
