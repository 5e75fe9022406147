"""The ``zoneout`` console script; subcommands are added by the train/serve packages."""

from __future__ import annotations

import argparse
import sys


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``zoneout`` command."""
    parser = argparse.ArgumentParser(prog="zoneout", description="Zoneout RNNs for TensorFlow.")
    parser.add_argument("--version", action="store_true", help="print the version and exit")
    args = parser.parse_args(argv)
    if args.version:
        from tf_zoneout import __version__

        print(__version__)
        return 0
    parser.print_help()
    return 0


if __name__ == "__main__":
    sys.exit(main())
