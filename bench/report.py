"""Render every CPU's rnn_speed results into docs/BENCHMARKS.md (between its markers).

Each CPU kind has its own JSON file (docs/bench/rnn_speed-<cpu kind>.json, written by
``python -m bench.rnn_speed --out auto``) and its own table here, so a run on one processor
never replaces another processor's figures.

    python -m bench.report [--results docs/bench] [--doc docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from bench.rnn_speed import table


def render(payload: dict) -> str:
    env = payload["environment"]
    threads = f", {env['threads']} threads" if "threads" in env else ""
    precision = env.get("precision", "float32")
    lines = [
        f"### {env['cpu']}"
        + ("" if precision == "float32" else f", {precision} (apart from the float32 figures)")
        + (f", {payload['date']}" if "date" in payload else ""),
        "",
        f"Command: `{payload['command']}`. Machine: {env['cores']} cores{threads}, {env['gpus']} GPU; "
        f"TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"PyTorch {env.get('torch') or 'not installed'}, Python {env['python']}; "
        f"T={env['seq_len']}, vocabulary {env['vocab']}.",
        "",
        table(payload["results"]),
    ]
    return "\n".join(lines)


def render_all(results_dir: Path) -> str:
    payloads = [json.loads(path.read_text()) for path in sorted(results_dir.glob("rnn_speed-*.json"))]
    if not payloads:
        raise SystemExit(f"no rnn_speed-*.json in {results_dir}: run `python -m bench.rnn_speed --out auto`")

    def order(payload):
        env = payload["environment"]
        return env["cpu"], env.get("precision", "float32") != "float32"

    return "\n\n".join(render(p) for p in sorted(payloads, key=order))


def fill_section(doc: Path, name: str, body: str, heading: str) -> None:
    """Put ``body`` between ``doc``'s ``<!-- name:start -->`` and ``<!-- name:end -->`` marks, or, where
    the page has none yet, append them with ``body`` under ``heading`` (a "## ..." title and any
    introduction). A missing page is left alone.

    Args:
        doc: the page (docs/BENCHMARKS.md).
        name: the section's mark name (the benchmark's module name).
        body: the section's Markdown.
        heading: what comes before a new section.
    """
    if not doc.exists():
        return
    start, end = f"<!-- {name}:start -->", f"<!-- {name}:end -->"
    text = doc.read_text()
    block = f"{start}\n{body}\n{end}"
    if start in text:
        head, rest = text.split(start, 1)
        text = head + block + rest.split(end, 1)[1]
    else:
        text = text.rstrip() + f"\n\n{heading}\n\n{block}\n"
    doc.write_text(text)


def add_output_arguments(parser: argparse.ArgumentParser, name: str) -> None:
    """A benchmark's ``--out`` (its JSON, docs/bench/NAME.json) and ``--doc`` (docs/BENCHMARKS.md)."""
    parser.add_argument("--out", type=Path, default=Path(f"docs/bench/{name}.json"))
    parser.add_argument("--doc", type=Path, default=Path("docs/BENCHMARKS.md"))


def command_line(module: str, argv: list[str] | None) -> str:
    """The command that ran a benchmark: ``python -m MODULE`` and its arguments (else this process's)."""
    return " ".join([f"python -m {module}", *(sys.argv[1:] if argv is None else argv)])


def publish(result: dict, args: argparse.Namespace, name: str, heading: str, render) -> None:
    """Write ``result`` as JSON to ``args.out``, its table (``render(result)``) into ``args.doc``'s section
    ``name`` (a new one under ``heading``), and print the table."""
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    fill_section(args.doc, name, render(result), heading)
    print(render(result))


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--results", type=Path, default=Path("docs/bench"))
    parser.add_argument("--doc", type=Path, default=Path("docs/BENCHMARKS.md"))
    args = parser.parse_args(argv)
    if not args.doc.exists() or "<!-- rnn_speed:start -->" not in args.doc.read_text():
        raise SystemExit(f"{args.doc} has no rnn_speed section to fill")
    fill_section(args.doc, "rnn_speed", render_all(args.results), "")
    print(f"updated {args.doc} from {args.results}/rnn_speed-*.json")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
