"""The model base: exported SavedModels in TF Serving's layout, ``MODEL_BASE/NAME/VERSION/``.

One home for the layout, used by ``zoneout export`` (publishing), the service's registry (loading
the newest complete version) and ``zoneout sample``/``score``. A version folder is a SavedModel plus
``metadata.json``; a version appears complete or not at all (it is moved into place).
"""

from __future__ import annotations

import enum
import re
import shutil
import tempfile
from pathlib import Path

from tf_zoneout.errors import ZoneoutError
from tf_zoneout.saved_model import json_files

METADATA_FILE = "metadata.json"
WARMUP_FILE = Path("assets.extra") / "tf_serving_warmup_requests"  # TF Serving replays it at load


class ModelKind(enum.StrEnum):
    """What a version folder holds: ``metadata.json``'s ``kind``, or ``SAVED_MODEL`` without one."""

    LANGUAGE_MODEL = "language_model"  # text in, text out: generate and score
    SEQ2SEQ = "seq2seq"  # a problem string in, its answer out
    CLASSIFIER = "classifier"  # pixel sequences in, a label out
    SAVED_MODEL = "saved_model"  # no metadata.json (e.g. a user's own ``model.export()``)

    @classmethod
    def of(cls, metadata: dict) -> ModelKind:
        """The kind recorded in ``metadata`` (``SAVED_MODEL`` for an empty one); ValueError for an
        unknown kind."""
        kind = metadata.get("kind", cls.SAVED_MODEL.value)
        try:
            return cls(kind)
        except ValueError:
            known = ", ".join(k.value for k in cls)
            raise ModelBaseError(f"{METADATA_FILE}: unknown kind {kind!r} (known: {known})") from None


class ModelBaseError(ZoneoutError, ValueError):
    """A model name, or metadata, that the model base layout does not allow."""


SERVING_CONFIG_FILE = "models.config"
BATCHING_PARAMETERS_FILE = "batching_parameters.txt"
# TF Serving's --enable_batching parameters (its BatchingParameters text proto), chosen to batch as
# tf-zoneout's own service does by default; every signature's inputs and outputs are batched along
# dimension 0, so TF Serving may merge requests (score's padded outputs then share the longest
# text's width; ``lengths`` says how many entries of each row count).
BATCHING_PARAMETERS = """\
# TF Serving batching for the models in this folder (tensorflow_model_server --enable_batching
# --batching_parameters_file=/models/batching_parameters.txt). Written by `zoneout export`.

# The most rows (requests of one prompt or text each) merged into one model call: 16, as the
# service's ZONEOUT_MAX_BATCH_SIZE. Larger batches raise throughput and each request's latency.
max_batch_size { value: 16 }

# How long the first request of a batch waits for others: 5 ms, as ZONEOUT_MAX_BATCH_WAIT_MS.
batch_timeout_micros { value: 5000 }

# Batches computed at once: one per CPU core TF Serving should use (these machines have 2).
num_batch_threads { value: 2 }

# Batches that may wait; past that TF Serving answers UNAVAILABLE at once instead of queueing
# without bound: 4 batches of 16, the 64 requests of ZONEOUT_MAX_QUEUE.
max_enqueued_batches { value: 4 }

# Inputs are [batch] strings and scalars per row: nothing to pad.
pad_variable_length_inputs: false
"""
MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def is_model_name(name: str) -> bool:
    """Whether ``name`` is a model name: 1-64 letters, digits, '_', '.' or '-', starting with a
    letter or digit, no '..'.

    Args:
        name: the candidate (a folder name under the model base, or a request's model).
    """
    return bool(MODEL_NAME.match(name)) and ".." not in name


def check_model_name(name: str) -> str:
    """``name`` if it is safe as one path component (``is_model_name``).

    Args:
        name: the model name to check.

    Raises:
        ModelBaseError: it is not; the message says what is allowed.
    """
    if not is_model_name(name):
        raise ModelBaseError(
            f"model name {name!r} must be 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def versions(model_dir: Path, complete_only: bool = False) -> list[int]:
    """The numeric version folders of a model folder, ascending.

    Args:
        model_dir: MODEL_BASE/NAME (a missing folder has no versions).
        complete_only: only the versions holding a ``saved_model.pb``.
    """
    if not model_dir.is_dir():
        return []
    return sorted(
        int(p.name)
        for p in model_dir.iterdir()
        if p.is_dir() and p.name.isdigit() and (not complete_only or (p / "saved_model.pb").exists())
    )


def latest_versions(model_base: Path) -> dict[str, tuple[int, Path]]:
    """{name: (highest complete version, its folder)} for every model under ``model_base``.

    Args:
        model_base: MODEL_BASE (a missing folder has no models).
    """
    found = {}
    if not model_base.is_dir():
        return found
    for model_dir in sorted(model_base.iterdir()):
        if model_dir.is_dir() and is_model_name(model_dir.name):
            complete = versions(model_dir, complete_only=True)
            if complete:
                found[model_dir.name] = (complete[-1], model_dir / str(complete[-1]))
    return found


def resolve_export(path: Path) -> Path:
    """The SavedModel folder for ``path``: itself, or a model folder's highest complete version.

    Args:
        path: a SavedModel folder or MODEL_BASE/NAME.

    Raises:
        FileNotFoundError: ``path`` is neither.
    """
    if (path / "saved_model.pb").exists():
        return path
    found = versions(path, complete_only=True)
    if found:
        return path / str(found[-1])
    raise FileNotFoundError(f"{path} is neither a SavedModel folder nor a model folder with versions")


def read_metadata(version_dir: Path) -> dict:
    """The export's metadata.json ({} for a SavedModel without one).

    Args:
        version_dir: a SavedModel folder (MODEL_BASE/NAME/VERSION or a run's ``export/``).

    Raises:
        DamagedFileError: the file is damaged (the message names it and says to re-export).
    """
    fix = "export the run again (zoneout export RUN_DIR --model-base MODEL_BASE) and remove this version"
    metadata = json_files.read_json(Path(version_dir) / METADATA_FILE, {}, fix)
    if not isinstance(metadata, dict):
        raise json_files.DamagedFileError(
            f"{Path(version_dir) / METADATA_FILE} is damaged (not an object); {fix}"
        )
    return metadata


def publish(export_dir: Path, model_base: Path, name: str) -> Path:
    """Copy an export to ``model_base/name/<next version>`` and rewrite TF Serving's model config.

    The version appears complete or not at all (copied beside it, then renamed); two publishers at
    once get two versions.

    Args:
        export_dir: a SavedModel folder (a run's ``export/``).
        model_base: the TF Serving model base.
        name: the model's name (``check_model_name``).

    Returns:
        The new version's folder.

    Raises:
        FileNotFoundError: ``export_dir`` holds no ``saved_model.pb``.
        ValueError: ``name`` is not a valid model name.
    """
    if not (export_dir / "saved_model.pb").exists():
        raise FileNotFoundError(f"{export_dir} is not a SavedModel (no saved_model.pb); did the run finish?")
    model_dir = model_base / check_model_name(name)
    model_dir.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".incoming-", dir=model_dir))
    try:
        shutil.copytree(export_dir, staging, dirs_exist_ok=True)
        while True:
            target = model_dir / str((versions(model_dir) or [0])[-1] + 1)
            try:
                staging.rename(target)  # fails if another publisher took this number
                write_serving_config(model_base)
                return target
            except OSError:
                if not target.exists():
                    raise
    finally:
        shutil.rmtree(staging, ignore_errors=True)


def write_serving_config(model_base: Path, serving_base: str = "/models") -> Path:
    """Write TF Serving's model config listing every model under ``model_base``, and its batching
    parameters (``BATCHING_PARAMETERS``) unless the folder has its own already.

    Args:
        model_base: the model base on this machine.
        serving_base: the same folder as TF Serving sees it (the compose file mounts it at /models).

    Returns:
        The config file's path (``model_base/models.config``).
    """
    names = sorted(
        p.name for p in model_base.iterdir() if p.is_dir() and is_model_name(p.name) and versions(p)
    )
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{serving_base}/{name}"\n'
        f'    model_platform: "tensorflow"\n  }}\n'
        for name in names
    )
    path = model_base / SERVING_CONFIG_FILE
    json_files.write_text(path, f"model_config_list {{\n{entries}}}\n")
    batching = model_base / BATCHING_PARAMETERS_FILE
    if not batching.exists():  # an operator's own tuning is kept
        json_files.write_text(batching, BATCHING_PARAMETERS)
    return path
