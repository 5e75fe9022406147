"""``zoneout serve`` start-up: seconds until ``/health`` answers 200 and the serving process's resident
memory then, for this checkout and for an earlier revision, measured alternately in one run.

    python -m bench.serve_startup --before a64cfa8 [--repeats 5]

The earlier revision is checked out in a temporary git worktree and run with ``PYTHONPATH``
pointing at its packages (the installed environment is shared). Both serve the same untrained
demo-sized char-PTB export. Writes docs/bench/serve_startup.json and the section of
docs/BENCHMARKS.md.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.local_server import LocalServer
from bench.report import add_output_arguments, command_line, publish
from bench.serve_soak import cpu_name
from bench.stream_speed import demo_sized_export

REPO = Path(__file__).resolve().parent.parent
PACKAGES = {
    "tf_zoneout": "tf_zoneout",
    "tf_zoneout_train": "train",
    "tf_zoneout_serve": "serve",
    "bench": "bench",
}


def checkout(revision: str, scratch: Path) -> Path:
    """A folder to put on PYTHONPATH that imports ``revision``'s packages (a git worktree's folders
    linked under their installed names)."""
    tree = scratch / "tree"
    subprocess.run(["git", "worktree", "add", "--detach", str(tree), revision], cwd=REPO, check=True,
                   capture_output=True)  # fmt: skip
    path = scratch / "path"
    path.mkdir()
    for name, folder in PACKAGES.items():
        (path / name).symlink_to(tree / folder)
    return path


def start_once(model_base: Path, pythonpath: Path | None) -> tuple[float, int]:
    """(seconds until healthy, RSS bytes then) of one ``zoneout serve``."""
    saved = os.environ.get("PYTHONPATH")
    if pythonpath is not None:
        os.environ["PYTHONPATH"] = str(pythonpath)
    try:
        started = time.perf_counter()
        with LocalServer(model_base, poll_seconds=60) as server:
            return time.perf_counter() - started, server.rss_bytes()
    finally:
        if pythonpath is not None:
            if saved is None:
                os.environ.pop("PYTHONPATH")
            else:
                os.environ["PYTHONPATH"] = saved


def render(result: dict) -> str:
    rows = [
        f"Command: `{result['command']}`. Machine: {result['cpu']}; model: {result['model']}; medians of "
        f"{result['repeats']} starts each, alternated. Start-up: from the process's launch until "
        "`/health` answers 200 (TensorFlow imported, the app built, the model loaded).",
        "",
        "| revision | start-up (s) | RSS when healthy (MiB) |",
        "|---|---|---|",
    ]
    for name, run in result["runs"].items():
        rows.append(f"| {name} | {run['seconds']:.2f} | {run['rss_mib']:.0f} |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--before", required=True, help="the earlier git revision to compare with")
    parser.add_argument("--repeats", type=int, default=5)
    add_output_arguments(parser, "serve_startup")
    args = parser.parse_args(argv)
    args.out, args.doc = args.out.resolve(), args.doc.resolve()
    samples: dict[str, list[tuple[float, int]]] = {f"before ({args.before})": [], "this checkout": []}
    with tempfile.TemporaryDirectory(prefix="serve-startup-") as scratch:
        scratch = Path(scratch)
        model_base = scratch / "models"
        demo_sized_export(model_base)
        before = checkout(args.before, scratch)
        here = Path.cwd()
        os.chdir(scratch)  # `python -m` puts the working folder first on sys.path: not this checkout's
        try:
            for _ in range(args.repeats):
                for name, path in zip(samples, (before, None)):
                    samples[name].append(start_once(model_base, path))
        finally:
            os.chdir(here)
            subprocess.run(["git", "worktree", "remove", "--force", str(scratch / "tree")], cwd=REPO)
    result = {
        "command": command_line("bench.serve_startup", argv),
        "cpu": f"{cpu_name()}, {os.cpu_count()} cores",
        "model": "char-PTB demo size (LSTM 256 units), untrained",
        "repeats": args.repeats,
        "runs": {
            name: {
                "seconds": statistics.median(s for s, _ in runs),
                "rss_mib": statistics.median(r for _, r in runs) / 2**20,
            }
            for name, runs in samples.items()
        },
    }
    publish(result, args, "serve_startup", "## Service start-up", render)
    return 0


if __name__ == "__main__":
    sys.exit(main())
