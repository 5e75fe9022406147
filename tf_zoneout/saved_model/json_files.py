"""JSON files of runs and exports: written atomically, read with an error that names a damaged file.

``write_json`` writes a temporary file beside the target, flushes it to disk and renames it over the
target, so a crash or a full disk leaves the old file or the new one, never half of one.
``read_json`` turns a file that is not valid JSON into a ``DamagedFileError`` naming the file, what
is wrong and ``fix`` (what to do about it), instead of a traceback from the JSON parser.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from tf_zoneout.errors import ZoneoutError

_REQUIRED = object()


class DamagedFileError(ZoneoutError, ValueError):
    """A file cannot be read as what it should be; the message names it and says what to do."""


def read_json(path: str | os.PathLike, default=_REQUIRED, fix: str = "restore it from a copy"):
    """The parsed content of ``path``; ``default`` when it does not exist (if given).

    Raises:
        FileNotFoundError: the file does not exist and no ``default`` was given.
        DamagedFileError: the file is not valid UTF-8 JSON.
    """
    path = Path(path)
    if not path.exists() and default is not _REQUIRED:
        return default
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as error:
        problem = f"not valid JSON: {error.msg} at line {error.lineno}, column {error.colno}"
    except UnicodeDecodeError:
        problem = "not UTF-8 text"
    raise DamagedFileError(f"{path} is damaged ({problem}); {fix}")


def write_json(path: str | os.PathLike, data) -> Path:
    """Write ``data`` as JSON, whole or not at all (``write_text``)."""
    return write_text(path, json.dumps(data, indent=1, sort_keys=True) + "\n")


def write_text(path: str | os.PathLike, text: str) -> Path:
    """Write ``text`` through a flushed temporary file and a rename: a reader never sees half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", encoding="utf-8") as handle:
        handle.write(text)
        handle.flush()
        os.fsync(handle.fileno())
    tmp.replace(path)
    return path
