"""Model backends: the same SavedModel signatures called in-process or on TF Serving (gRPC).

A backend's ``call(signature, inputs)`` takes a dict of NumPy arrays (all batched) and
returns a dict of NumPy arrays. Nothing else of the service depends on where the
model runs.
"""

from __future__ import annotations

import numpy as np


class InProcessBackend:
    """Loads the SavedModel folder with ``tf.saved_model.load`` and calls its signatures."""

    def __init__(self, directory):
        import tensorflow as tf

        self._tf = tf
        self.model = tf.saved_model.load(str(directory))
        self.signatures = set(self.model.signatures)

    def call(self, signature: str, inputs: dict) -> dict:
        tf = self._tf
        outputs = self.model.signatures[signature](**{k: tf.constant(v) for k, v in inputs.items()})
        return {k: v.numpy() for k, v in outputs.items()}


class TFServingBackend:
    """Calls ``PredictionService/Predict`` of TF Serving for one model name and version."""

    def __init__(self, address: str, name: str, version: int, signatures, timeout: float = 60.0):
        import grpc
        from tensorflow_serving.apis import prediction_service_pb2_grpc

        self.name, self.version, self.timeout = name, version, timeout
        self.signatures = set(signatures)
        self.channel = grpc.insecure_channel(address)
        self.stub = prediction_service_pb2_grpc.PredictionServiceStub(self.channel)

    def call(self, signature: str, inputs: dict) -> dict:
        import tensorflow as tf
        from tensorflow_serving.apis import predict_pb2

        request = predict_pb2.PredictRequest()
        request.model_spec.name = self.name
        request.model_spec.version.value = self.version
        request.model_spec.signature_name = signature
        for key, value in inputs.items():
            request.inputs[key].CopyFrom(tf.make_tensor_proto(np.asarray(value)))
        response = self.stub.Predict(request, timeout=self.timeout)
        return {key: tf.make_ndarray(proto) for key, proto in response.outputs.items()}
