"""The benchmarks' ``--shapes HxB[,HxB...]`` argument: hidden units x batch size."""

from __future__ import annotations

import argparse

DEFAULT = "1000x32,256x64"


def parse_shapes(text: str) -> list[tuple[int, int]]:
    """ "1000x32,256x64" -> [(1000, 32), (256, 64)]; a clear error for anything else."""
    shapes = []
    for item in text.split(","):
        parts = item.strip().lower().split("x")
        if len(parts) != 2 or not all(p.isdigit() and int(p) > 0 for p in parts):
            raise argparse.ArgumentTypeError(
                f"{item!r} is not HxB (positive units x batch size), e.g. 256x64"
            )
        shapes.append((int(parts[0]), int(parts[1])))
    return shapes


def add_shapes_argument(parser: argparse.ArgumentParser, default: str = DEFAULT) -> None:
    parser.add_argument(
        "--shapes",
        type=parse_shapes,
        default=parse_shapes(default),
        help=f"comma-separated HxB list (default {default})",
    )
