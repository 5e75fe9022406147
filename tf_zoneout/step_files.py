"""The ``step`` signature outside TensorFlow: ``step.tflite`` (TFLite builtin ops only, run by
LiteRT) and ``step.onnx`` (run by onnxruntime), converted from a language-model export and checked
against the export's own ``step`` before they are written beside it.

Both take ``token`` int32 [B] and ``state`` float32 [B, S] (any B). The TFLite file's signature
``step`` returns ``logprobs`` [B, V] and ``state`` [B, S]; ONNX cannot name an output as it names an
input, so the ONNX graph's outputs are ``logprobs`` and ``new_state``. ``vocab.json`` and
``metadata.json``'s ``step`` entry (S, V, the start token, the state layout) lie beside them.

>>> write_step_files(version_dir, ["tflite", "onnx"])  # doctest: +SKIP
[PosixPath('.../step.tflite'), PosixPath('.../step.onnx')]
"""

from __future__ import annotations

import contextlib
import importlib.util
import logging
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from tf_zoneout.errors import ZoneoutError
from tf_zoneout.saved_model.model_base import read_metadata

FILES = {"tflite": "step.tflite", "onnx": "step.onnx"}
# The Python modules each format needs: to convert it and to run it for the check.
NEEDS = {"tflite": ("ai_edge_litert",), "onnx": ("tf2onnx", "onnxruntime")}
INSTALL_HINT = "pip install 'tf-zoneout[edge]'"
ONNX_OPSET = 17  # every onnxruntime since 1.12 runs it
GREEDY_STEPS = 48
TOLERANCE = 1e-4  # on log-probabilities and states (float32 kernels of three runtimes)


class StepFileError(ZoneoutError, RuntimeError):
    """A step file could not be converted, or does not compute what the export's ``step`` does."""


def missing_modules(formats: Sequence[str]) -> list[str]:
    """The Python modules ``formats`` need that are not installed (empty: all there).

    Args:
        formats: some of ``FILES``' keys.

    Raises:
        ValueError: an unknown format.
    """
    unknown = [f for f in formats if f not in FILES]
    if unknown:
        raise ValueError(f"unknown step file format(s) {unknown}; expected some of {sorted(FILES)}")
    needed = [module for f in formats for module in NEEDS[f]]
    return [m for m in dict.fromkeys(needed) if importlib.util.find_spec(m) is None]


def convert_tflite(directory: Path, step) -> bytes:
    """The export's ``step`` signature as a TFLite flatbuffer of builtin ops only, its signature named
    ``step`` (dynamic batch).

    Args:
        directory: the export.
        step: its loaded ``step`` signature (unused: the converter reads the SavedModel itself).
    """
    import tensorflow as tf

    converter = tf.lite.TFLiteConverter.from_saved_model(str(directory), signature_keys=["step"])
    converter.target_spec.supported_ops = [tf.lite.OpsSet.TFLITE_BUILTINS]
    return converter.convert()


def convert_onnx(directory: Path, step) -> bytes:
    """The export's ``step`` signature as an ONNX model (opset ``ONNX_OPSET``): inputs token and
    state, outputs logprobs and new_state (dynamic batch).

    Args:
        directory: the export (unused: tf2onnx converts the loaded function).
        step: its loaded ``step`` signature.
    """
    import tensorflow as tf
    import tf2onnx

    logging.getLogger("tf2onnx").setLevel(logging.ERROR)
    declared = step.structured_input_signature[1]
    specs = [tf.TensorSpec(declared[n].shape, declared[n].dtype, name=n) for n in ("token", "state")]

    @tf.function(input_signature=specs, autograph=False)
    def renamed(token, state):
        outputs = step(token=token, state=state)
        return {"logprobs": outputs["logprobs"], "new_state": outputs["state"]}

    proto, _ = tf2onnx.convert.from_function(renamed, input_signature=specs, opset=ONNX_OPSET)
    return proto.SerializeToString()


def runner(fmt: str, model: bytes | str | Path) -> Callable[[np.ndarray, np.ndarray], tuple]:
    """A function ``(token [B] int32, state [B, S] float32) -> (logprobs [B, V], state [B, S])``
    running a step file in its runtime (LiteRT's interpreter, XNNPack on; onnxruntime on the CPU).

    Args:
        fmt: "tflite" or "onnx".
        model: the file's bytes or path.
    """
    content = Path(model).read_bytes() if isinstance(model, str | Path) else model
    if fmt == "tflite":
        from ai_edge_litert.interpreter import Interpreter

        signature = Interpreter(model_content=content).get_signature_runner("step")

        def run_tflite(token, state):
            outputs = signature(token=np.asarray(token, np.int32), state=np.asarray(state, np.float32))
            return outputs["logprobs"], outputs["state"]

        return run_tflite
    import onnxruntime

    session = onnxruntime.InferenceSession(content, providers=["CPUExecutionProvider"])

    def run_onnx(token, state):
        inputs = {"token": np.asarray(token, np.int32), "state": np.asarray(state, np.float32)}
        logprobs, new_state = session.run(["logprobs", "new_state"], inputs)
        return logprobs, new_state

    return run_onnx


def check_step_file(fmt: str, run, reference, step_metadata: dict) -> None:
    """Compare a step file's ``run`` with the export's ``reference`` step (both as ``runner``
    returns them): on a batch of 4 tokens from zero and from random states, and over a greedy run of
    ``GREEDY_STEPS`` tokens from the start token at batch 1, each fed its own greedy token.

    Raises:
        StepFileError: a log-probability or state differs by more than ``TOLERANCE``, or the greedy
            tokens differ where the reference's choice is not a near tie.
    """
    size, vocab, start = step_metadata["state_size"], step_metadata["vocab_size"], step_metadata["start_id"]
    tokens = np.array([start, 0, vocab - 1, start], np.int32)
    states = [np.zeros([4, size], np.float32), np.random.default_rng(0).normal(0, 0.5, [4, size]).astype("f")]

    def compare(what, ours, theirs):
        for name, a, b in zip(("logprobs", "state"), ours, theirs):
            difference = float(np.max(np.abs(a - b)))
            if not difference <= TOLERANCE:
                raise StepFileError(
                    f"{FILES[fmt]}: {name} differs from the export's step by {difference:.2g} ({what})"
                )

    for k, state in enumerate(states):
        compare(
            f"batch of 4, {'zero' if k == 0 else 'random'} states",
            run(tokens, state),
            reference(tokens, state),
        )
    token, ours, theirs = np.array([start], np.int32), np.zeros([1, size], "f"), np.zeros([1, size], "f")
    ours_token = token
    for t in range(GREEDY_STEPS):
        ours_out, theirs_out = run(ours_token, ours), reference(token, theirs)
        compare(f"greedy step {t}", ours_out, theirs_out)
        best = np.sort(theirs_out[0][0])[-2:]
        ours_token = np.argmax(ours_out[0], axis=-1).astype(np.int32)
        token = np.argmax(theirs_out[0], axis=-1).astype(np.int32)
        if ours_token[0] != token[0]:
            if best[1] - best[0] < TOLERANCE:
                return  # a near tie: the runs may part here, fairly
            raise StepFileError(
                f"{FILES[fmt]}: greedy token {t} is {ours_token[0]}, the export's step says {token[0]}"
            )
        ours, theirs = ours_out[1], theirs_out[1]


def write_step_files(directory: str | Path, formats: Sequence[str]) -> list[Path]:
    """Convert the ``step`` signature of the language-model export in ``directory`` to each of
    ``formats`` ("tflite", "onnx"), check each against the export (``check_step_file``) and write
    them into ``directory`` (``FILES``). Nothing is written unless every format converts and agrees.

    Args:
        directory: a language-model export (a version folder with ``step`` and ``vocab.json``).
        formats: which files to write.

    Returns:
        The files written.

    Raises:
        StepFileError: a converter or runtime is missing (one line naming the extra to install), the
            export has no ``step``, a conversion fails, or a file disagrees with the export.
    """
    import tensorflow as tf

    directory = Path(directory)
    missing = missing_modules(formats)
    if missing:
        raise StepFileError(f"step files need {', '.join(missing)}: {INSTALL_HINT}")
    metadata = read_metadata(directory).get("step")
    loaded = tf.saved_model.load(str(directory))
    if metadata is None or "step" not in loaded.signatures:
        raise StepFileError(
            f"{directory} has no `step` signature (a language-model export of tf-zoneout >= 0.5 has one): "
            "export the run again (zoneout export RUN_DIR --model-base BASE --rebuild)"
        )
    step = loaded.signatures["step"]

    def reference(token, state):
        outputs = step(token=tf.constant(token, tf.int32), state=tf.constant(state, tf.float32))
        return outputs["logprobs"].numpy(), outputs["state"].numpy()

    converters = {"tflite": convert_tflite, "onnx": convert_onnx}
    staged = []
    try:
        for fmt in formats:
            try:
                content = converters[fmt](directory, step)
            except Exception as error:  # the converters raise many kinds; the message is what matters
                first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
                raise StepFileError(f"{FILES[fmt]}: the converter failed: {first}") from error
            check_step_file(fmt, runner(fmt, content), reference, metadata)
            partial = directory / f".{FILES[fmt]}.partial"
            partial.write_bytes(content)
            staged.append((partial, directory / FILES[fmt]))
        for partial, final in staged:
            partial.replace(final)
    finally:
        for partial, _ in staged:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()
    return [final for _, final in staged]
