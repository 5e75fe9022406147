"""A stand-in for TF Serving's gRPC PredictionService, for tests (TF Serving cannot be installed here).

It serves MODEL_BASE/NAME/VERSION SavedModels through the real ``tensorflow-serving-api``
protocol (``PredictionService/Predict``: model_spec name, version, signature_name; TensorProto
inputs and outputs). Models are loaded as TF Serving loads them: by TensorFlow's C++ loader
(``TF_LoadSessionFromSavedModel``, through ``tests/cc_loader.py``), then warmed up by replaying
the export's ``assets.extra/tf_serving_warmup_requests``; a model that fails either is not served.
What it does not reproduce: TF Serving's own batching and version policy.
"""

from __future__ import annotations

import threading
from concurrent import futures
from pathlib import Path

import grpc
import tensorflow as tf
from cc_loader import CcLoaderError, CcSavedModel
from tensorflow_serving.apis import predict_pb2, prediction_service_pb2_grpc


class PredictionServicer(prediction_service_pb2_grpc.PredictionServiceServicer):
    def __init__(self, model_base: Path):
        self.model_base = Path(model_base)
        self.loaded = {}
        self._lock = threading.Lock()

    def _model(self, name: str, version: int) -> CcSavedModel:
        with self._lock:
            key = (name, version)
            if key not in self.loaded:
                model = CcSavedModel(self.model_base / name / str(version))
                model.replay_warmup()
                self.loaded[key] = model
            return self.loaded[key]

    def Predict(self, request, context):  # noqa: N802 (the gRPC method name)
        spec = request.model_spec
        path = self.model_base / spec.name / str(spec.version.value)
        if not (path / "saved_model.pb").exists():
            context.abort(
                grpc.StatusCode.NOT_FOUND, f"servable {spec.name} version {spec.version.value} not found"
            )
        try:
            model = self._model(spec.name, spec.version.value)
        except CcLoaderError as error:
            context.abort(grpc.StatusCode.FAILED_PRECONDITION, f"servable failed to load: {error}")
        inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
        try:
            outputs = model.run(spec.signature_name or "serving_default", inputs)
        except (KeyError, ValueError, CcLoaderError) as error:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, str(error))
        response = predict_pb2.PredictResponse()
        response.model_spec.CopyFrom(spec)
        for key, value in outputs.items():
            response.outputs[key].CopyFrom(tf.make_tensor_proto(value))
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
