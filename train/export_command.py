"""``zoneout export RUN_DIR --model-base BASE [--name NAME]``: publish a run's export in
TF Serving's layout BASE/NAME/VERSION (the next free version number)."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tf_zoneout.model_base import publish


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
