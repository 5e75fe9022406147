"""Serving latency and throughput: generate (100 new characters) and score (1,000 characters).

For 1, 8 and 32 concurrent clients on loopback, against ``zoneout serve`` started twice
(batching on, batching off), it records latency p50/p99 and requests/s; then it times
generation inside the SavedModel (one signature call for 100 tokens) against a Python
loop calling the model once per token. Writes JSON and the table in docs/BENCHMARKS.md.

    python -m bench.serve_speed --model-base models --model char_ptb_demo [--requests 64]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import numpy as np

from bench.local_server import LocalServer
from bench.report import add_output_arguments, command_line, publish

PROMPT = "the company said "
SCORE_TEXT = ("the company said its profit rose in the third quarter as sales of new products grew " * 13)[
    :1000
]


def load(url: str, model: str, kind: str, clients: int, requests: int) -> dict:
    """``requests`` requests from ``clients`` concurrent clients; latency percentiles and throughput."""
    if kind == "generate":
        path, body = f"/v1/models/{model}/generate", {"prompt": PROMPT, "max_new_tokens": 100, "seed": 1}
    else:
        path, body = f"/v1/models/{model}/score", {"text": SCORE_TEXT}

    def one(i):
        started = time.perf_counter()
        response = httpx.post(
            url + path, json={**body, **({"seed": i} if kind == "generate" else {})}, timeout=300
        )
        response.raise_for_status()
        return time.perf_counter() - started

    one(0)  # warm-up (first call traces the signature)
    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=clients) as pool:
        latencies = list(pool.map(one, range(requests)))
    wall = time.perf_counter() - started
    return {
        "p50_ms": 1000 * statistics.median(latencies),
        "p99_ms": 1000 * float(np.percentile(latencies, 99)),
        "requests_per_s": requests / wall,
    }


def in_graph_vs_python_loop(model_dir: Path, tokens: int = 100, repeats: int = 5) -> dict:
    """Seconds for 100 tokens: one ``serving_default`` call vs one call per token from Python."""
    import tensorflow as tf

    from tf_zoneout.saved_model.signatures import generate_inputs

    generate = tf.saved_model.load(str(model_dir)).signatures["serving_default"]

    def call(prompt, n, seed):
        inputs = generate_inputs([prompt], max_new_tokens=n, temperature=1.0, seed=seed)
        return generate(**{k: tf.constant(v) for k, v in inputs.items()})["text"].numpy()[0].decode()

    call(PROMPT, tokens, 0)
    call(PROMPT, 1, 0)
    one_call, loop = [], []
    for _ in range(repeats):
        started = time.perf_counter()
        call(PROMPT, tokens, 1)
        one_call.append(time.perf_counter() - started)
        started = time.perf_counter()
        text = PROMPT
        for step in range(tokens):
            text += call(text, 1, step)
        loop.append(time.perf_counter() - started)
    return {"one_call_s": statistics.median(one_call), "python_loop_s": statistics.median(loop)}


def render(result: dict) -> str:
    lines = [
        f"Command: `{result['command']}`. Machine: {result['machine']}, {os.cpu_count()} cores; model "
        f"`{result['model']}` ({result['model_info']}); {result['requests']} requests per row "
        "after one warm-up.",
        "",
        "| request | clients | batching | p50 (ms) | p99 (ms) | requests/s |",
        "|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        lines.append(
            f"| {row['kind']} | {row['clients']} | {'on' if row['batching'] else 'off'} | "
            f"{row['p50_ms']:,.0f} | "
            f"{row['p99_ms']:,.0f} | {row['requests_per_s']:.1f} |"
        )
    loop = result["generation"]
    lines += [
        "",
        f"Generating 100 characters: one call of the SavedModel's `serving_default` "
        f"{1000 * loop['one_call_s']:,.0f} ms; a Python loop calling it once per character "
        f"{1000 * loop['python_loop_s']:,.0f} ms ({loop['python_loop_s'] / loop['one_call_s']:.0f}x slower).",
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--model-base", type=Path, default=Path("models"))
    parser.add_argument("--model", default="char_ptb_demo")
    parser.add_argument("--requests", type=int, default=64)
    parser.add_argument("--clients", default="1,8,32")
    add_output_arguments(parser, "serve_speed")
    args = parser.parse_args(argv)
    versions = sorted(int(p.name) for p in (args.model_base / args.model).iterdir() if p.name.isdigit())
    model_dir = args.model_base / args.model / str(versions[-1])
    metadata = json.loads((model_dir / "metadata.json").read_text())
    config = metadata.get("config", {})
    rows = []
    for batching in (True, False):
        with LocalServer(args.model_base, batching=str(batching).lower(), max_queue=1000) as server:
            for kind in ("generate", "score"):
                for clients in (int(c) for c in args.clients.split(",")):
                    row = {"kind": kind, "clients": clients, "batching": batching}
                    row.update(load(server.url, args.model, kind, clients, args.requests))
                    print(json.dumps(row), flush=True)
                    rows.append(row)
    result = {
        "command": command_line("bench.serve_speed", argv),
        "machine": platform.processor() or platform.machine(),
        "model": args.model,
        "model_info": f"{config.get('task')}, {config.get('cell')} {config.get('units')} units",
        "requests": args.requests,
        "rows": rows,
        "generation": in_graph_vs_python_loop(model_dir),
    }
    intro = "Loopback HTTP against `zoneout serve` (`python -m bench.serve_speed`)."
    publish(result, args, "serve_speed", f"## Serving\n\n{intro}", render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
