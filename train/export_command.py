"""``zoneout export RUN_DIR --model-base BASE [--name NAME]``: publish a run's export in
TF Serving's layout BASE/NAME/VERSION (the next free version number)."""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

MODEL_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")


def check_model_name(name: str) -> str:
    """A model name that is safe as one path component (letters, digits, _ . -)."""
    if not MODEL_NAME.match(name) or ".." in name:
        raise ValueError(
            f"model name {name!r} must be 1-64 letters, digits, '_', '.' or '-', "
            "starting with a letter or digit"
        )
    return name


def versions(model_dir: Path) -> list[int]:
    """The numeric version folders of a model folder, ascending."""
    if not model_dir.is_dir():
        return []
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit())


def publish(export_dir: Path, model_base: Path, name: str) -> Path:
    """Copy ``export_dir`` to model_base/name/<next version>; the version appears complete or not at all."""
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
    """TF Serving's model config listing every model under ``model_base`` (as seen at ``serving_base``)."""
    names = sorted(
        p.name for p in model_base.iterdir() if p.is_dir() and MODEL_NAME.match(p.name) and versions(p)
    )
    entries = "".join(
        f'  config {{\n    name: "{name}"\n    base_path: "{serving_base}/{name}"\n'
        f'    model_platform: "tensorflow"\n  }}\n'
        for name in names
    )
    path = model_base / "models.config"
    tmp = model_base / ".models.config.tmp"
    tmp.write_text(f"model_config_list {{\n{entries}}}\n")
    tmp.replace(path)
    return path


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="publish a run's SavedModel as BASE/NAME/VERSION")
    parser.add_argument("run_dir", type=Path, help="a finished run folder (holds export/)")
    parser.add_argument("--model-base", type=Path, required=True, help="TF Serving model base folder")
    parser.add_argument("--name", help="model name (default: the run folder's name)")
    parser.set_defaults(run=run)


def run(args) -> int:
    name = args.name or re.sub(r"[^A-Za-z0-9_.-]", "-", args.run_dir.resolve().name)
    try:
        target = publish(args.run_dir / "export", args.model_base, name)
    except (ValueError, FileNotFoundError) as error:
        print(f"zoneout export: error: {error}", file=sys.stderr)
        return 1
    print(f"exported {args.run_dir} as {name} version {target.name}: {target}")
    return 0
