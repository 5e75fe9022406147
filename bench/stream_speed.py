"""Streaming cost and the token-level step's latency.

1. Against ``zoneout serve`` on loopback with its default settings: one non-streamed ``generate`` of
   N tokens against the same generation streamed (``generate_stream``), and the same through
   ``/v1/completions`` (stream or not). Then, with 16 tokens per piece, the gap between streamed
   pieces at piece 2 and at piece 60 (a piece continues from the carried state: it costs the same
   late as early).
2. The ``step`` signature at batch 1, one token per call, as an on-device decoder pays it: the
   SavedModel in TensorFlow, ``step.tflite`` in LiteRT (XNNPack) and ``step.onnx`` in onnxruntime.

The model is the char-PTB ``demo`` preset's size (LSTM, 256 units, 50 characters), untrained (speed
does not depend on the weights), exported with ``--tflite --onnx``; or ``--model-dir`` an export of
your own. Medians of ``--repeats`` runs. Writes JSON and the table in docs/BENCHMARKS.md.

    python -m bench.stream_speed [--tokens 1000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import string
import tempfile
import time
from pathlib import Path

import httpx
import numpy as np

from bench.report import add_output_arguments, command_line, publish
from bench.serve_soak import cpu_name

PROMPT = "the company said "
MODEL = "lm"


def demo_sized_export(model_base: Path) -> Path:
    """An untrained LM of the char-PTB demo preset's size, exported as MODEL_BASE/lm/1 with step files."""
    import tensorflow as tf

    from tf_zoneout import export, step_files
    from tf_zoneout.data.vocab import EOL, Vocabulary
    from tf_zoneout.models.language_model import LanguageModel
    from tf_zoneout_train import config as config_lib
    from tf_zoneout_train.tasks.language_modeling import recurrent_spec

    config = config_lib.resolve("char_ptb", "demo")
    tokens = ("_", EOL, *string.ascii_lowercase, *string.digits, *"'$&-.N#*/\\")[:50]
    model = LanguageModel(
        len(tokens), config.embedding_dim, recurrent_spec(config, jit_compile=False), config.num_layers
    )
    model(tf.zeros([1, 2], tf.int32))
    directory = model_base / MODEL / "1"
    export.export_language_model(
        model, Vocabulary("ptb_char", tokens, EOL, None), directory, {"task": "char_ptb"}
    )
    step_files.write_step_files(directory, ["tflite", "onnx"])
    return directory


def _stream_times(url: str, path: str, body: dict) -> tuple[float, list[float]]:
    """(seconds to the end of the stream, arrival time of each text-carrying event)."""
    arrivals, started = [], time.perf_counter()
    with httpx.stream("POST", url + path, json=body, timeout=600) as response:
        response.raise_for_status()
        for line in response.iter_lines():
            if line.startswith("data:") and '"text"' in line:
                arrivals.append(time.perf_counter() - started)
    return time.perf_counter() - started, arrivals


def serving(model_base: Path, tokens: int, repeats: int) -> dict:
    """Non-streamed against streamed generation through the service (see the module docstring)."""
    from bench.local_server import LocalServer
    from tf_zoneout_serve.settings import Settings

    generate = {"prompt": PROMPT, "max_new_tokens": tokens, "seed": 1}
    complete = {"model": MODEL, "prompt": PROMPT, "max_tokens": tokens, "seed": 1}
    rows = {"generate": [], "generate_stream": [], "completions": [], "completions_stream": []}
    with LocalServer(model_base, max_new_tokens=max(tokens, 1000)) as server:
        url = server.url
        for _ in range(repeats + 1):  # the first round warms up (traces the signatures)
            started = time.perf_counter()
            httpx.post(f"{url}/v1/models/{MODEL}/generate", json=generate, timeout=600).raise_for_status()
            rows["generate"].append(time.perf_counter() - started)
            rows["generate_stream"].append(
                _stream_times(url, f"/v1/models/{MODEL}/generate_stream", generate)[0]
            )
            started = time.perf_counter()
            httpx.post(f"{url}/v1/completions", json=complete, timeout=600).raise_for_status()
            rows["completions"].append(time.perf_counter() - started)
            rows["completions_stream"].append(
                _stream_times(url, "/v1/completions", {**complete, "stream": True})[0]
            )
    gaps = {2: [], 60: []}
    long = {**generate, "max_new_tokens": max(tokens, 16 * 61)}
    with LocalServer(model_base, max_new_tokens=max(tokens, 1000), stream_chunk_tokens=16) as server:
        for _ in range(repeats + 1):
            arrivals = _stream_times(server.url, f"/v1/models/{MODEL}/generate_stream", long)[1]
            for piece, found in gaps.items():
                found.append(arrivals[piece] - arrivals[piece - 1])
    medians = {k: statistics.median(v[1:]) for k, v in rows.items()}
    return {
        "stream_chunk_tokens": Settings.model_fields["stream_chunk_tokens"].default,
        "seconds": medians,
        "stream_over_one_call": {
            "generate": medians["generate_stream"] / medians["generate"],
            "completions": medians["completions_stream"] / medians["completions"],
        },
        "piece_gap_ms": {str(k): 1000 * statistics.median(v[1:]) for k, v in gaps.items()},
    }


def step_latency(directory: Path, calls: int = 300) -> dict:
    """Median milliseconds of one ``step`` call at batch 1 in TensorFlow, LiteRT and onnxruntime."""
    import tensorflow as tf

    from tf_zoneout import step_files

    size = json.loads((directory / "metadata.json").read_text())["step"]["state_size"]
    step = tf.saved_model.load(str(directory)).signatures["step"]

    def tensorflow_step(token, state):
        outputs = step(token=tf.constant(token), state=tf.constant(state))
        return outputs["logprobs"].numpy(), outputs["state"].numpy()

    runners = {
        "tensorflow": tensorflow_step,
        "litert": step_files.runner("tflite", directory / "step.tflite"),
        "onnxruntime": step_files.runner("onnx", directory / "step.onnx"),
    }
    found = {}
    for name, run in runners.items():
        token, state, times = np.array([1], np.int32), np.zeros([1, size], np.float32), []
        for _ in range(calls + 20):
            started = time.perf_counter()
            logprobs, state = run(token, state)
            times.append(time.perf_counter() - started)
            token = np.argmax(logprobs, axis=-1).astype(np.int32)
        found[name] = 1000 * statistics.median(times[20:])
    return found


def render(result: dict) -> str:
    s, ratio, gaps = result["seconds"], result["stream_over_one_call"], result["piece_gap_ms"]
    n = result["tokens"]
    lines = [
        f"Command: `{result['command']}`. Machine: {result['cpu']}; model: {result['model']}; "
        f"medians of {result['repeats']} runs after one warm-up; the default "
        f"`ZONEOUT_STREAM_CHUNK_TOKENS` ({result['stream_chunk_tokens']} tokens per streamed piece).",
        "",
        f"| {n} tokens | one call (s) | streamed (s) | streamed / one call |",
        "|---|---|---|---|",
        f"| `generate` / `generate_stream` | {s['generate']:.2f} | {s['generate_stream']:.2f} | "
        f"{ratio['generate']:.2f}x |",
        f"| `/v1/completions` (`stream` off / on) | {s['completions']:.2f} | {s['completions_stream']:.2f} | "
        f"{ratio['completions']:.2f}x |",
        "",
        "With 16 tokens per piece, the gap between streamed pieces: "
        + ", ".join(f"piece {k}: {v:.1f} ms" for k, v in gaps.items())
        + " (each piece continues from the carried state; before, each re-read the whole text).",
        "",
        "| `step` at batch 1 | ms per token |",
        "|---|---|",
        *(f"| {name} | {ms:.3f} |" for name, ms in result["step_ms"].items()),
    ]
    return "\n".join(lines)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tokens", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5)
    add_output_arguments(parser, "stream_speed")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="stream-speed-") as scratch:
        model_base = Path(scratch) / "models"
        directory = demo_sized_export(model_base)
        result = {
            "command": command_line("bench.stream_speed", argv),
            "cpu": f"{cpu_name()}, {os.cpu_count()} cores",
            "model": "char-PTB demo size (LSTM 256 units, 50 characters), untrained",
            "tokens": args.tokens,
            "repeats": args.repeats,
            **serving(model_base, args.tokens, args.repeats),
            "step_ms": step_latency(directory),
        }
    publish(result, args, "stream_speed", "## Streaming and the token-level step", render)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
