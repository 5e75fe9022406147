"""Write the latest benchmark JSON into docs/BENCHMARKS.md (between its markers).

python -m bench.report [--json docs/bench/rnn_speed.json] [--doc docs/BENCHMARKS.md]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from bench.rnn_speed import table

START, END = "<!-- rnn_speed:start -->", "<!-- rnn_speed:end -->"


def render(payload: dict) -> str:
    env = payload["environment"]
    lines = [
        f"Command: `{payload['command']}`. Machine: {env['cores']} cores ({env['cpu']}), "
        f"{env['gpus']} GPU; TensorFlow {env['tensorflow']}, Keras {env['keras']}, "
        f"PyTorch {env.get('torch') or 'not installed'}, Python {env['python']}; "
        f"T={env['seq_len']}, vocabulary {env['vocab']}.",
        "",
        table(payload["results"]),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--json", type=Path, default=Path("docs/bench/rnn_speed.json"))
    parser.add_argument("--doc", type=Path, default=Path("docs/BENCHMARKS.md"))
    args = parser.parse_args(argv)
    payload = json.loads(args.json.read_text())
    doc = args.doc.read_text()
    if START not in doc or END not in doc:
        raise SystemExit(f"{args.doc} has no {START} ... {END} section to fill")
    head, rest = doc.split(START, 1)
    _, tail = rest.split(END, 1)
    args.doc.write_text(f"{head}{START}\n{render(payload)}\n{END}{tail}")
    print(f"updated {args.doc} from {args.json}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
