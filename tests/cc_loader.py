"""SavedModels loaded and run through TensorFlow's C API: the C++ loader TF Serving links.

``CcSavedModel(directory)`` calls ``TF_LoadSessionFromSavedModel`` from ``libtensorflow_cc``
(through ctypes; no compiler needed). That is the C++ ``LoadSavedModel`` which TF Serving, TF Java
and every C/C++ client use: it imports the MetaGraph, restores the variables by running the saver's
restore op and then runs the init op. Python's ``tf.saved_model.load`` restores objects another way
(through the object graph), so an export can answer there and fail here (the export's own check,
``tf_zoneout.export._check_servable``, uses TensorFlow's session loader, which fails alike). Test
scaffolding: the suite runs every export through it.

``run(signature, inputs)`` feeds NumPy arrays to a signature's input tensors and fetches its
outputs, as TF Serving's Predict does. ``replay_warmup()`` runs the export's TF Serving warm-up
requests (``assets.extra/tf_serving_warmup_requests``) the same way.
"""

from __future__ import annotations

import ctypes
import threading
from pathlib import Path

import numpy as np
import tensorflow as tf

from tf_zoneout.saved_model.model_base import WARMUP_FILE

_TSTRING_BYTES = 24  # sizeof(TF_TString) on 64-bit platforms
_DT_STRING = 7


class CcLoaderError(RuntimeError):
    """The C++ loader could not load the SavedModel or run one of its signatures."""


class _Output(ctypes.Structure):
    _fields_ = [("oper", ctypes.c_void_p), ("index", ctypes.c_int)]


class _Buffer(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("length", ctypes.c_size_t), ("deallocator", ctypes.c_void_p)]


_lock = threading.Lock()
_api = None


def _c_api():
    """The C API's functions, bound once: tensors and statuses live in libtensorflow_framework,
    graphs and sessions in libtensorflow_cc (both ship in the ``tensorflow`` wheel)."""
    global _api
    with _lock:
        if _api is None:
            folder = Path(tf.__file__).parent
            framework = ctypes.CDLL(str(folder / "libtensorflow_framework.so.2"), mode=ctypes.RTLD_GLOBAL)
            cc = ctypes.CDLL(str(folder / "libtensorflow_cc.so.2"), mode=ctypes.RTLD_GLOBAL)
            p, i, i64, size = ctypes.c_void_p, ctypes.c_int, ctypes.c_int64, ctypes.c_size_t
            signatures = {
                framework: {
                    "TF_NewStatus": (p, []),
                    "TF_DeleteStatus": (None, [p]),
                    "TF_GetCode": (i, [p]),
                    "TF_Message": (ctypes.c_char_p, [p]),
                    "TF_NewBuffer": (ctypes.POINTER(_Buffer), []),
                    "TF_DeleteBuffer": (None, [ctypes.POINTER(_Buffer)]),
                    "TF_AllocateTensor": (p, [i, ctypes.POINTER(i64), i, size]),
                    "TF_DeleteTensor": (None, [p]),
                    "TF_TensorData": (p, [p]),
                    "TF_TensorType": (i, [p]),
                    "TF_NumDims": (i, [p]),
                    "TF_Dim": (i64, [p, i]),
                },
                cc: {
                    "TF_NewGraph": (p, []),
                    "TF_DeleteGraph": (None, [p]),
                    "TF_NewSessionOptions": (p, []),
                    "TF_DeleteSessionOptions": (None, [p]),
                    "TF_LoadSessionFromSavedModel": (
                        p,
                        [
                            p,
                            p,
                            ctypes.c_char_p,
                            ctypes.POINTER(ctypes.c_char_p),
                            i,
                            p,
                            ctypes.POINTER(_Buffer),
                            p,
                        ],
                    ),
                    "TF_CloseSession": (None, [p, p]),
                    "TF_DeleteSession": (None, [p, p]),
                    "TF_GraphOperationByName": (p, [p, ctypes.c_char_p]),
                    "TF_SessionRun": (
                        None,
                        [p, p, ctypes.POINTER(_Output), ctypes.POINTER(p), i]
                        + [ctypes.POINTER(_Output), ctypes.POINTER(p), i, p, i, p, p],
                    ),
                    "TF_StringInit": (None, [p]),
                    "TF_StringCopy": (None, [p, ctypes.c_char_p, size]),
                    "TF_StringGetDataPointer": (p, [p]),
                    "TF_StringGetSize": (size, [p]),
                },
            }
            api = {}
            for library, functions in signatures.items():
                for name, (restype, argtypes) in functions.items():
                    function = getattr(library, name)
                    function.restype, function.argtypes = restype, argtypes
                    api[name] = function
            _api = api
    return _api


class _Status:
    def __init__(self, api):
        self.api, self.handle = api, api["TF_NewStatus"]()

    def check(self, what: str) -> None:
        if self.api["TF_GetCode"](self.handle) != 0:
            message = self.api["TF_Message"](self.handle).decode(errors="replace")
            raise CcLoaderError(f"{what}: {message}")

    def __del__(self):
        self.api["TF_DeleteStatus"](self.handle)


def _to_c_tensor(api, value: np.ndarray, dtype: tf.DType):
    """A new TF_Tensor holding ``value`` as ``dtype`` (the caller deletes it)."""
    if dtype == tf.string:
        array = np.asarray(value, dtype=object)
        dims = (ctypes.c_int64 * array.ndim)(*array.shape)
        tensor = api["TF_AllocateTensor"](_DT_STRING, dims, array.ndim, _TSTRING_BYTES * array.size)
        base = api["TF_TensorData"](tensor)
        for k, item in enumerate(array.reshape(-1)):
            data = item if isinstance(item, bytes) else str(item).encode()
            element = base + k * _TSTRING_BYTES
            api["TF_StringInit"](element)
            api["TF_StringCopy"](element, data, len(data))
        return tensor
    array = np.ascontiguousarray(value, dtype=dtype.as_numpy_dtype)
    dims = (ctypes.c_int64 * array.ndim)(*array.shape)
    tensor = api["TF_AllocateTensor"](dtype.as_datatype_enum, dims, array.ndim, array.nbytes)
    if array.nbytes:
        ctypes.memmove(api["TF_TensorData"](tensor), array.ctypes.data, array.nbytes)
    return tensor


def _from_c_tensor(api, tensor) -> np.ndarray:
    """A NumPy copy of a TF_Tensor (strings as an object array of bytes)."""
    shape = tuple(api["TF_Dim"](tensor, d) for d in range(api["TF_NumDims"](tensor)))
    count = int(np.prod(shape, dtype=np.int64))
    base = api["TF_TensorData"](tensor)
    enum = api["TF_TensorType"](tensor)
    if enum == _DT_STRING:
        items = []
        for k in range(count):
            element = base + k * _TSTRING_BYTES
            size = api["TF_StringGetSize"](element)
            items.append(ctypes.string_at(api["TF_StringGetDataPointer"](element), size))
        return np.array(items, dtype=object).reshape(shape)
    dtype = np.dtype(tf.dtypes.as_dtype(enum).as_numpy_dtype)
    if count == 0:
        return np.zeros(shape, dtype)
    return np.frombuffer(ctypes.string_at(base, count * dtype.itemsize), dtype).reshape(shape).copy()


def _check_shape(signature: str, name: str, shape: tuple, expected) -> None:
    """ValueError unless ``shape`` fits the signature input's TensorShapeProto (-1: any size)."""
    if expected.unknown_rank:
        return
    dims = [d.size for d in expected.dim]
    if len(shape) != len(dims) or any(d >= 0 and d != s for d, s in zip(dims, shape)):
        wanted = "[" + ", ".join("None" if d < 0 else str(d) for d in dims) + "]"
        raise ValueError(f"signature {signature!r} input {name!r} has shape {wanted}; got {list(shape)}")


class CcSavedModel:
    """A SavedModel loaded by the C++ loader, with its signatures runnable from Python.

    Args:
        directory: the SavedModel folder (holding ``saved_model.pb``).
        tags: the MetaGraph's tags (TF Serving loads ``serve``).

    Raises:
        CcLoaderError: the loader failed (the message is TensorFlow's).
    """

    def __init__(self, directory, tags=("serve",)):
        from tensorflow.core.protobuf import meta_graph_pb2

        self.directory = Path(directory)
        self._api = api = _c_api()
        status = _Status(api)
        self._graph = api["TF_NewGraph"]()
        options = api["TF_NewSessionOptions"]()
        buffer = api["TF_NewBuffer"]()
        tag_array = (ctypes.c_char_p * len(tags))(*[t.encode() for t in tags])
        try:
            self._session = api["TF_LoadSessionFromSavedModel"](
                options,
                None,
                str(self.directory).encode(),
                tag_array,
                len(tags),
                self._graph,
                buffer,
                status.handle,
            )
            status.check(f"TF_LoadSessionFromSavedModel({self.directory})")
            meta_graph = meta_graph_pb2.MetaGraphDef()
            meta_graph.ParseFromString(ctypes.string_at(buffer.contents.data, buffer.contents.length))
        finally:
            api["TF_DeleteBuffer"](buffer)
            api["TF_DeleteSessionOptions"](options)
        self.signatures = {
            name: signature
            for name, signature in meta_graph.signature_def.items()
            if not name.startswith("__")  # __saved_model_init_op is not a signature to call
        }

    def _output(self, tensor_name: str) -> _Output:
        op_name, _, index = tensor_name.partition(":")
        operation = self._api["TF_GraphOperationByName"](self._graph, op_name.encode())
        if not operation:
            raise CcLoaderError(f"the graph has no operation {op_name!r}")
        return _Output(operation, int(index or 0))

    def run(self, signature: str, inputs: dict) -> dict[str, np.ndarray]:
        """Run one signature: {input name: array} -> {output name: array}, as TF Serving's Predict.

        Raises:
            KeyError: no such signature, or an input it does not have / lacks one it needs.
            ValueError: an input's shape does not fit the signature's.
            CcLoaderError: TensorFlow failed to run it (the message is TensorFlow's).
        """
        api = self._api
        if signature not in self.signatures:
            raise KeyError(f"no signature {signature!r}; this model has {sorted(self.signatures)}")
        definition = self.signatures[signature]
        if set(inputs) != set(definition.inputs):
            raise KeyError(
                f"signature {signature!r} takes inputs {sorted(definition.inputs)}, got {sorted(inputs)}"
            )
        for name, value in inputs.items():
            _check_shape(signature, name, np.shape(value), definition.inputs[name].tensor_shape)
        in_names = sorted(inputs)
        out_names = sorted(definition.outputs)
        feeds = (_Output * len(in_names))(*[self._output(definition.inputs[n].name) for n in in_names])
        fetches = (_Output * len(out_names))(*[self._output(definition.outputs[n].name) for n in out_names])
        values = (ctypes.c_void_p * len(in_names))(
            *[_to_c_tensor(api, inputs[n], tf.dtypes.as_dtype(definition.inputs[n].dtype)) for n in in_names]
        )
        results = (ctypes.c_void_p * len(out_names))()
        status = _Status(api)
        try:
            api["TF_SessionRun"](
                self._session, None, feeds, values, len(in_names), fetches, results, len(out_names),
                None, 0, None, status.handle,
            )  # fmt: skip
            status.check(f"signature {signature!r} of {self.directory}")
            return {name: _from_c_tensor(api, results[k]) for k, name in enumerate(out_names)}
        finally:
            for tensor in list(values) + [r for r in results if r]:
                api["TF_DeleteTensor"](tensor)

    def replay_warmup(self) -> int:
        """Run every warm-up request of the export, as TF Serving does at load; returns their count
        (0 for an export without a warm-up file: TF Serving loads it without warming up).

        Raises:
            CcLoaderError: a request failed.
        """
        path = self.directory / WARMUP_FILE
        if not path.exists():
            return 0
        from tensorflow_serving.apis import prediction_log_pb2

        count = 0
        for record in tf.data.TFRecordDataset(str(path)).as_numpy_iterator():
            log = prediction_log_pb2.PredictionLog.FromString(record)
            request = log.predict_log.request
            inputs = {k: tf.make_ndarray(v) for k, v in request.inputs.items()}
            self.run(request.model_spec.signature_name or "serving_default", inputs)
            count += 1
        return count

    def close(self) -> None:
        if getattr(self, "_session", None):
            status = _Status(self._api)
            self._api["TF_CloseSession"](self._session, status.handle)
            self._api["TF_DeleteSession"](self._session, status.handle)
            self._session = None
        if getattr(self, "_graph", None):
            self._api["TF_DeleteGraph"](self._graph)
            self._graph = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def __del__(self):
        self.close()
