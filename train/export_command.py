"""``zoneout export RUN_DIR --model-base BASE [--name NAME] [--rebuild]``: publish a run's export in
TF Serving's layout BASE/NAME/VERSION (the next free version number).

``--rebuild`` writes the run's export again from its checkpoints with this version's exporter
first: the way to bring an export written by an earlier version up to date (the service refuses
one whose signatures are outdated, and names this command).
"""

from __future__ import annotations

import re
import shutil
import sys
import tempfile
from pathlib import Path

from tf_zoneout.errors import ZoneoutError
from tf_zoneout.saved_model.model_base import read_metadata

# Keys of metadata.json that the exporter writes itself (the rest come from the run).
EXPORTER_KEYS = ("kind", "level", "vocab_size", "dataset", "signatures", "step")


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser("export", help="publish a run's SavedModel as BASE/NAME/VERSION")
    parser.add_argument("run_dir", type=Path, help="a finished run folder (holds export/)")
    parser.add_argument("--model-base", type=Path, required=True, help="TF Serving model base folder")
    parser.add_argument("--name", help="model name (default: the run folder's name)")
    parser.add_argument(
        "--rebuild",
        action="store_true",
        help="write the run's export again from its checkpoints first (an outdated export)",
    )
    parser.add_argument(
        "--tflite",
        action="store_true",
        help="also write step.tflite (the token-level step, TFLite builtins) into the version folder",
    )
    parser.add_argument(
        "--onnx",
        action="store_true",
        help="also write step.onnx (the token-level step) into the version folder",
    )
    parser.add_argument("--data-dir", help="with --rebuild: the raw data files (else $ZONEOUT_DATA_DIR)")
    parser.add_argument("--tfds-dir", help="with --rebuild: the TFDS data folder")
    parser.set_defaults(run=run)


def rebuild(run_dir: Path, tfds_dir: str | None, data_dir: str | None = None) -> Path:
    """Export the finished run in ``run_dir`` again, from its best (else last) checkpoint.

    ``tfds_dir`` and ``data_dir`` say where its task reads data (see ``tasks.get``)."""
    from tf_zoneout_train import config as config_lib
    from tf_zoneout_train import tasks
    from tf_zoneout_train.loop import Trainer

    config = config_lib.load(run_dir)
    task = tasks.get(config, tfds_dir, data_dir)
    model = Trainer(task, run_dir, resume=True, show_progress=False).restore_final()
    metadata = {k: v for k, v in read_metadata(run_dir / "export").items() if k not in EXPORTER_KEYS}
    task.export(model, run_dir / "export", metadata or {"task": config.task})
    return run_dir / "export"


def publish_with_step_files(export: Path, model_base: Path, name: str, formats: list[str]) -> Path:
    """Publish a copy of ``export`` holding the step files of ``formats`` (``step_files``), each
    checked against the export: the version appears with them, or (on any error) not at all.

    Raises:
        StepFileError: a converter is missing, fails, or disagrees with the export.
    """
    from tf_zoneout import step_files
    from tf_zoneout.saved_model.model_base import publish

    missing = step_files.missing_modules(formats)
    if missing:  # before any work
        raise step_files.StepFileError(
            f"--{' --'.join(formats)} needs {', '.join(missing)}: {step_files.INSTALL_HINT}"
        )
    with tempfile.TemporaryDirectory(
        prefix=".step-files-", dir=model_base if model_base.is_dir() else None
    ) as scratch:
        copy = Path(scratch) / "export"
        shutil.copytree(export, copy)
        step_files.write_step_files(copy, formats)
        return publish(copy, model_base, name)


def run(args) -> int:
    from tf_zoneout.saved_model.model_base import publish

    name = args.name or re.sub(r"[^A-Za-z0-9_.-]", "-", args.run_dir.resolve().name)
    export = args.run_dir / "export"
    try:
        if args.rebuild:
            rebuild(args.run_dir, args.tfds_dir, args.data_dir)
            print(f"rebuilt {export} from the run's checkpoints")
        formats = [f for f in ("tflite", "onnx") if getattr(args, f)]
        if formats:
            target = publish_with_step_files(export, args.model_base, name, formats)
        else:
            target = publish(export, args.model_base, name)
    except (ZoneoutError, FileNotFoundError) as error:  # anything else keeps its traceback
        print(f"zoneout export: error: {error}", file=sys.stderr)
        return 1
    print(f"exported {args.run_dir} as {name} version {target.name}: {target}")
    return 0
