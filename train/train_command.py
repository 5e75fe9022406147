"""``zoneout train TASK [--preset P] [--run-dir D] [--resume] [--FLAG VALUE ...]``."""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time
from pathlib import Path

from tf_zoneout.errors import ZoneoutError
from tf_zoneout_train import config as config_lib
from tf_zoneout_train.task_registry import TASKS, TaskFamily, task_info


def add_parser(subparsers) -> None:
    parser = subparsers.add_parser(
        "train",
        help=f"train a task of the paper ({', '.join(config_lib.TASKS)})",
        description=(
            "Train one experiment of the paper and export it. Any field of the configuration can be "
            "overridden with --field-name VALUE (zoneout_* are KEEP probabilities; dropout-like fields "
            "are DROP probabilities)."
        ),
        epilog="tasks:\n"
        + "".join(f"  {task.name:22} {task.summary}\n" for task in TASKS)
        + "\nconfiguration fields:\n"
        + config_lib.flag_help(),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("task", help=f"one of {', '.join(config_lib.TASKS)}")
    parser.add_argument(
        "--preset",
        default="cpu",
        help="paper | cpu | smoke | demo (char_ptb) | small (word_ptb); default: cpu",
    )
    parser.add_argument("--run-dir", help="run folder (default runs/TASK-PRESET-TIME)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --run-dir")
    parser.add_argument(
        "--data-dir", help="folder with the raw data files (else $ZONEOUT_DATA_DIR or download)"
    )
    parser.add_argument("--tfds-dir", help="TFDS data folder (default ~/tensorflow_datasets)")
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="print the resolved configuration as one JSON object and exit (reads no data, builds no model)",
    )
    parser.set_defaults(run=run, overrides=[])


def resolve_config(args) -> config_lib.RunConfig:
    """The run's configuration: from the run folder when resuming, else preset + flags."""
    overrides = config_lib.parse_overrides(args.overrides)
    if args.resume:
        if not args.run_dir:
            raise config_lib.ConfigError("--resume needs --run-dir (the run to continue)")
        saved = config_lib.load(args.run_dir)
        if saved.task != args.task:
            raise config_lib.ConfigError(f"{args.run_dir} is a {saved.task} run, not {args.task}")
        changed = {k: v for k, v in overrides.items() if getattr(saved, k) != v}
        refused = {k: v for k, v in changed.items() if k not in config_lib.RESUMABLE_FIELDS}
        if refused:
            allowed = ", ".join("--" + f.replace("_", "-") for f in config_lib.RESUMABLE_FIELDS)
            raise config_lib.ConfigError(
                f"--resume continues the saved model, data and optimizer; these flags differ from them: "
                f"{refused}. A resume may change only how long and how the run stops: {allowed}"
            )
        return config_lib.validate(dataclasses.replace(saved, **changed))
    return config_lib.resolve(args.task, args.preset, overrides)


def run(args) -> int:
    try:
        config = resolve_config(args)
    except config_lib.ConfigError as error:
        print(f"zoneout train: error: {error}", file=sys.stderr)
        return 2
    if args.dry_run:
        print(config.to_json(), flush=True)
        return 0
    run_dir = Path(args.run_dir or f"runs/{config.task}-{config.preset}-{time.strftime('%Y%m%d-%H%M%S')}")
    print(f"configuration ({config.task}, preset {config.preset}):\n{config.to_json()}", flush=True)
    from tf_zoneout_train.distribute import make_strategy
    from tf_zoneout_train.loop import Trainer
    from tf_zoneout_train.stop_signals import StoppedBySignalError

    try:
        # First TensorFlow work of the process: multi-worker collectives are configured here.
        strategy = make_strategy(config.strategy)
        if task_info(config.task).family is TaskFamily.ANALYSIS:
            from tf_zoneout_train import analysis

            analysis.run(config, run_dir, args.tfds_dir, resume=args.resume, data_dir=args.data_dir)
        else:
            from tf_zoneout_train import tasks

            task = tasks.get(config, args.tfds_dir, args.data_dir)
            Trainer(task, run_dir, resume=args.resume, strategy=strategy).run()
    except StoppedBySignalError as stopped:
        print(f"zoneout train: {stopped}", file=sys.stderr, flush=True)
        return stopped.exit_status  # 143 after SIGTERM, 130 after SIGINT
    except ZoneoutError as error:  # what the user can fix; anything else keeps its traceback
        print(f"zoneout train: error: {error}", file=sys.stderr)
        return 1
    return 0
