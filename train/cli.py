"""The ``zoneout`` console script: one subcommand per job (``zoneout data ...``)."""

from __future__ import annotations

import argparse
import importlib.util
import sys

from tf_zoneout_train.console import import_tensorflow_quietly

# The modules each command needs beyond the core install, and the extra that brings them.
EXTRAS = {
    "data": ("experiments", ("tensorflow_datasets",)),
    "train": ("experiments", ("tensorflow_datasets", "tqdm", "matplotlib")),
    "serve": ("serve", ("fastapi", "uvicorn", "pydantic_settings", "prometheus_client")),
}


def missing_extra(command: str | None) -> str | None:
    """A message naming the extra to install when ``command`` needs modules that are not installed."""
    extra, modules = EXTRAS.get(command, (None, ()))
    absent = [m for m in modules if importlib.util.find_spec(m) is None]
    if not absent:
        return None
    return (
        f"zoneout {command} needs the '{extra}' extra ({', '.join(absent)} not installed): "
        f"pip install 'tf-zoneout[{extra}]'"
    )


def build_parser() -> argparse.ArgumentParser:
    # The subcommands import TensorFlow: import it first, quietly (see train.console).
    import_tensorflow_quietly()
    from tf_zoneout_train import data_command, export_command, serve_command, train_command, use_command

    parser = argparse.ArgumentParser(prog="zoneout", description="Zoneout RNNs for TensorFlow.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    subparsers = parser.add_subparsers(title="commands", metavar="COMMAND", dest="command")
    data_command.add_parser(subparsers)
    train_command.add_parser(subparsers)
    export_command.add_parser(subparsers)
    use_command.add_parsers(subparsers)
    serve_command.add_parser(subparsers)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoneout`` command."""
    parser = build_parser()
    # Data-set names may follow options (`data stats --tfds-dir D ptb_char`), which
    # argparse's "*" positional does not allow: collect the leftovers here.
    args, leftovers = parser.parse_known_args(argv)
    if leftovers and hasattr(args, "overrides"):
        args.overrides, leftovers = leftovers, []
    if leftovers:
        if not hasattr(args, "datasets") or any(a.startswith("-") for a in leftovers):
            parser.error(f"unrecognized arguments: {' '.join(leftovers)}")
        args.datasets = [*args.datasets, *leftovers]
    if args.version:
        from tf_zoneout import __version__

        print(__version__)
        return 0
    if not hasattr(args, "run"):
        parser.print_help()
        return 0
    problem = missing_extra(args.command)
    if problem:
        print(problem, file=sys.stderr)
        return 2
    if getattr(args, "datasets", None):
        from tf_zoneout_train import data_command

        unknown = sorted(set(args.datasets) - set(data_command.DATASETS))
        if unknown:
            parser.error(f"unknown data set(s) {unknown}; choose from {', '.join(data_command.DATASETS)}")
    return args.run(args)


if __name__ == "__main__":
    sys.exit(main())
