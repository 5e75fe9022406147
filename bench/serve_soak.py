"""Memory and latency under a long mixed load: does the serving process's memory settle?

``C`` concurrent clients send ``N`` requests to a real ``zoneout serve`` process: generation, streams,
scoring, OpenAI completions (with log-probabilities, echo-scoring), classifier predictions and bad
requests (schema violations, unknown models, operations a model does not offer, non-JSON bodies), in
a seeded random mix over every model the server lists. The process's resident memory (RSS) is
sampled throughout. Writes JSON (RSS curve, latency percentiles, throughput, statuses), a PNG of the
curve, and the table in docs/BENCHMARKS.md.

    python -m bench.serve_soak --model-base MODEL_BASE [--requests 60000] [--clients 16]

A model base with a model of every kind: the suite's smoke runs, or e.g.
``zoneout train char_ptb --preset smoke --run-dir R && zoneout export R --model-base M --name char_lm``.
"""

from __future__ import annotations

import argparse
import itertools
import platform
import random
import statistics
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

from bench.local_server import LocalServer
from bench.report import add_output_arguments, command_line, publish

MARKS = (3_000, 15_000, 60_000)  # requests at which the RSS is reported
PROMPTS = ("the company ", "in the third quarter ", "mr. ", "shares of ", "", "the bank said its ")
TEXT = "the company said its profit rose in the third quarter as sales of new products grew "


def request_mix(
    models: list[dict], tokens: int = 20, text_chars: int = 250
) -> list[tuple[str, float, callable]]:
    """(kind, weight, make(rng) -> (method, path, keyword arguments of httpx)) for the listed models:
    generation of ``tokens`` tokens (streams and completions about as many), texts to score of up to
    ``text_chars`` characters."""
    text = (TEXT * (text_chars // len(TEXT) + 1))[:text_chars]
    language = [m["name"] for m in models if m["kind"] == "language_model"]
    seq2seq = [m["name"] for m in models if m["kind"] == "seq2seq"]
    classifiers = [m for m in models if m["kind"] == "classifier"]
    mix = []

    def post(path, body):
        return "POST", path, {"json": body}

    if language:
        mix += [
            ("generate", 0.22, lambda r: post(
                f"/v1/models/{r.choice(language)}/generate",
                {"prompt": r.choice(PROMPTS), "max_new_tokens": tokens, "seed": r.randrange(2**31)},
            )),
            ("generate_stream", 0.10, lambda r: post(
                f"/v1/models/{r.choice(language)}/generate_stream",
                {"prompt": r.choice(PROMPTS), "max_new_tokens": tokens + 4, "seed": r.randrange(2**31)},
            )),
            ("score", 0.18, lambda r: post(
                f"/v1/models/{r.choice(language)}/score", {"text": text[: r.randrange(10, text_chars + 1)]}
            )),
            ("completions", 0.14, lambda r: post("/v1/completions", {
                "model": r.choice(language), "prompt": r.choice(PROMPTS) or "a", "max_tokens": tokens,
                "logprobs": r.randrange(0, 6), "seed": r.randrange(2**31), "n": r.randrange(1, 3),
            })),
            ("echo_score", 0.06, lambda r: post("/v1/completions", {
                "model": r.choice(language), "prompt": text[: r.randrange(5, text_chars + 1)],
                "max_tokens": 0, "echo": True, "logprobs": 1,
            })),
        ]  # fmt: skip
    if seq2seq:
        mix.append(("seq2seq", 0.05, lambda r: post(
            f"/v1/models/{r.choice(seq2seq)}/generate", {"prompt": f"{r.randrange(999)}+{r.randrange(999)}"}
        )))  # fmt: skip
    for classifier in classifiers[:1]:
        name = classifier["name"]
        ((key, spec),) = classifier["signature_inputs"]["serving_default"].items()
        width = spec["shape"][1]
        mix.append(("predict", 0.05, lambda r, name=name, key=key, width=width: post(
            f"/v1/models/{name}/predict", {"inputs": {key: [[r.random() for _ in range(width)]]}}
        )))  # fmt: skip
    some = (language or seq2seq or [m["name"] for m in models])[0]
    mix += [
        ("bad_schema", 0.05, lambda r: post(
            f"/v1/models/{some}/generate", {"temperature": -r.random() - 0.1}
        )),
        ("unknown_model", 0.04, lambda r: post(
            f"/v1/models/nothing_{r.randrange(10**6)}/score", {"text": "a"}
        )),
        ("not_offered", 0.04, lambda r: post(
            f"/v1/models/{(seq2seq or [some])[0]}/score", {"text": "1+1"}
        )),
        ("bad_completions", 0.03, lambda r: post("/v1/completions", {"model": some, "seed": True})),
        ("not_json", 0.02, lambda r: ("POST", f"/v1/models/{some}/score", {
            "content": b"text=a", "headers": {"content-type": "application/x-www-form-urlencoded"},
        })),
    ]  # fmt: skip
    return mix


def send(client: httpx.Client, method: str, path: str, kwargs: dict) -> int:
    """One request; the status (the whole body is read, streams included)."""
    with client.stream(method, path, timeout=120, **kwargs) as response:
        for _ in response.iter_bytes():
            pass
        return response.status_code


def soak(
    server: LocalServer,
    requests: int,
    clients: int,
    seed: int,
    sample_seconds: float,
    tokens: int = 20,
    text_chars: int = 250,
) -> dict:
    """Run the load; the RSS samples, every request's (kind, status, seconds) and the wall time."""
    models = httpx.get(server.url + "/v1/models").json()["models"]
    mix = request_mix(models, tokens, text_chars)
    kinds, weights = [k for k, _, _ in mix], [w for _, w, _ in mix]
    makers = {k: make for k, _, make in mix}
    counter, lock = itertools.count(), threading.Lock()
    done = [0]
    results: list[tuple[str, int, float]] = []
    samples: list[tuple[float, int, int]] = []
    stop = threading.Event()
    began = time.monotonic()

    def sample():
        while not stop.is_set():
            samples.append((time.monotonic() - began, done[0], server.rss_bytes()))
            stop.wait(sample_seconds)

    def client_loop(index: int):
        rng = random.Random(seed * 1000 + index)
        with httpx.Client(base_url=server.url) as client:
            while (i := next(counter)) < requests:
                kind = rng.choices(kinds, weights)[0]
                method, path, kwargs = makers[kind](rng)
                start = time.perf_counter()
                try:
                    status = send(client, method, path, kwargs)
                except httpx.HTTPError:
                    status = 0  # no answer at all
                with lock:
                    results.append((kind, status, time.perf_counter() - start))
                    done[0] += 1
                if i % 1000 == 0:
                    print(f"  {i:,} requests, RSS {server.rss_bytes() / 2**20:,.0f} MB", flush=True)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    with ThreadPoolExecutor(clients) as pool:
        list(pool.map(client_loop, range(clients)))
    wall = time.monotonic() - began
    stop.set()
    sampler.join()
    samples.append((wall, done[0], server.rss_bytes()))
    return {"samples": samples, "results": results, "wall_seconds": wall, "mix": dict(zip(kinds, weights))}


def rss_at(samples, requests_done: int) -> float | None:
    """RSS in MB at the first sample with at least ``requests_done`` requests answered."""
    for _, done, rss in samples:
        if done >= requests_done:
            return rss / 2**20
    return None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def summarize(run: dict, warmup: int) -> dict:
    samples, results = run["samples"], run["results"]
    seconds = [s for _, _, s in results]
    statuses = Counter(str(status) for _, status, _ in results)
    per_kind = {}
    for kind in sorted({k for k, _, _ in results}):
        times = [s for k, _, s in results if k == kind]
        per_kind[kind] = {
            "requests": len(times),
            "p50_ms": 1000 * statistics.median(times),
            "p99_ms": 1000 * percentile(times, 0.99),
            "statuses": dict(Counter(str(st) for k, st, _ in results if k == kind)),
        }
    start_mb = rss_at(samples, 0)
    marks = {str(m): rss_at(samples, m) for m in (warmup, *MARKS)}
    end_mb = samples[-1][2] / 2**20
    after = marks[str(MARKS[0])]
    return {
        "requests": len(results),
        "wall_seconds": run["wall_seconds"],
        "requests_per_second": len(results) / run["wall_seconds"],
        "p50_ms": 1000 * statistics.median(seconds),
        "p99_ms": 1000 * percentile(seconds, 0.99),
        "statuses": dict(sorted(statuses.items())),
        "server_errors": sum(n for s, n in statuses.items() if s.startswith("5") or s == "0"),
        "rss_mb": {"start": start_mb, **marks, "end": end_mb},
        "growth_after_warmup_mb": end_mb - marks[str(warmup)] if marks[str(warmup)] else None,
        "growth_after_3000_mb": end_mb - after if after is not None else None,
        "per_kind": per_kind,
    }


def plot(run: dict, summary: dict, warmup: int, path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    done = [d for _, d, _ in run["samples"]]
    rss = [r / 2**20 for _, _, r in run["samples"]]
    figure, axis = plt.subplots(figsize=(8, 4.2))
    axis.plot(done, rss, lw=1.2, color="#1f77b4")
    for mark, style in ((warmup, ":"), (MARKS[0], "--")):
        if mark <= done[-1]:
            axis.axvline(mark, color="gray", ls=style, lw=0.8)
    after = summary["growth_after_3000_mb"]
    axis.set_xlabel("requests answered")
    axis.set_ylabel("server RSS (MB)")
    axis.set_title(title + (f"\ngrowth after 3,000 requests: {after:+.0f} MB" if after is not None else ""))
    axis.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def render(result: dict) -> str:
    s = result["summary"]
    marks = s["rss_mb"]

    def mb(key):
        return f"{marks[key]:,.0f}" if marks.get(key) is not None else "-"

    lines = [
        f"`{result['command']}` on {result['machine']}, {result['clients']} clients, "
        f"{s['requests']:,} requests in {s['wall_seconds']:,.0f} s ({s['requests_per_second']:,.0f}/s), "
        f"p50 {s['p50_ms']:,.0f} ms, p99 {s['p99_ms']:,.0f} ms, {s['server_errors']} server errors; "
        f"settings: {result['settings']}.",
        "",
        f"| RSS (MB) | start | after {result['warmup']:,} (warm-up) | 3,000 | 15,000 | 60,000 | end |",
        "|---|---|---|---|---|---|---|",
        f"| {result['label']} | {mb('start')} | {mb(str(result['warmup']))} | {mb('3000')} | {mb('15000')} "
        f"| {mb('60000')} | {mb('end')} |",
        "",
        (
            f"Growth after the first 3,000 requests: {s['growth_after_3000_mb']:+,.0f} MB "
            "(goal: under 100 MB)."
            if s["growth_after_3000_mb"] is not None
            else f"Growth after the warm-up: {s['growth_after_warmup_mb']:+,.0f} MB."
        )
        + " Statuses: "
        + ", ".join(f"{k}: {v:,}" for k, v in s["statuses"].items())
        + ".",
        "",
        "| request | n | p50 ms | p99 ms |",
        "|---|---|---|---|",
    ]
    for kind, row in s["per_kind"].items():
        lines.append(f"| {kind} | {row['requests']:,} | {row['p50_ms']:,.0f} | {row['p99_ms']:,.0f} |")
    lines += ["", f"![RSS over the soak]({result['plot']})"]
    return "\n".join(lines)


def cpu_name() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--model-base", type=Path, required=True)
    parser.add_argument("--requests", type=int, default=60_000)
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--warmup", type=int, default=200, help="requests before the reference RSS")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--sample-seconds", type=float, default=0.5)
    parser.add_argument("--tokens", type=int, default=20, help="tokens per generation request")
    parser.add_argument("--text-chars", type=int, default=250, help="longest text to score")
    parser.add_argument("--label", default="zoneout serve", help="the table row's name")
    add_output_arguments(parser, "serve_soak")
    args = parser.parse_args(argv)
    settings = {"max_queue": 1000, "poll_seconds": 60}
    print(
        f"soak: {args.requests:,} requests from {args.clients} clients against {args.model_base}", flush=True
    )
    with LocalServer(args.model_base, **settings) as server:
        run = soak(
            server, args.requests, args.clients, args.seed, args.sample_seconds, args.tokens, args.text_chars
        )
    summary = summarize(run, args.warmup)
    png = args.out.with_suffix(".png")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    plot(run, summary, args.warmup, png, f"zoneout serve, {args.clients} clients, mixed requests")
    step = max(1, len(run["samples"]) // 2000)
    result = {
        "command": command_line("bench.serve_soak", argv),
        "machine": cpu_name(),
        "clients": args.clients,
        "warmup": args.warmup,
        "label": args.label,
        "settings": ", ".join(f"ZONEOUT_{k.upper()}={v}" for k, v in settings.items()),
        "mix": run["mix"],
        "summary": summary,
        "rss_samples": [[round(t, 2), d, r] for t, d, r in run["samples"][::step]],
        "plot": str(png.relative_to(args.doc.parent)) if png.is_relative_to(args.doc.parent) else str(png),
    }
    publish(result, args, "serve_soak", "## Serving memory under load", render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
