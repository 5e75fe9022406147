"""The benchmark tooling: per-CPU result files and tables, and the matmul roofline's arithmetic."""

from __future__ import annotations

import json

from bench import report, roofline
from bench.rnn_speed import json_path


def _payload(cpu: str, tokens: float) -> dict:
    env = {"cpu": cpu, "cores": 2, "threads": 2, "gpus": 0, "tensorflow": "2.x", "keras": "3.x"}
    env |= {"torch": None, "python": "3.11", "seq_len": 100, "vocab": 50}
    row = {"tokens_per_s": tokens, "implementation": "graph", "percent_of_roofline": 40.0}
    return {"environment": env, "command": "python -m bench.rnn_speed", "results": {"H=8 B=2": {"tz": row}}}


def test_each_cpu_kind_keeps_its_own_file_and_table(tmp_path):
    paths = {cpu: json_path(cpu) for cpu in ("AMD EPYC (avx2)", "Intel(R) Xeon(R) Processor (amx)")}
    assert [p.name for p in paths.values()] == [
        "rnn_speed-amd-epyc-avx2.json",
        "rnn_speed-intel-xeon-processor-amx.json",
    ]
    for i, (cpu, path) in enumerate(paths.items()):
        (tmp_path / path.name).write_text(json.dumps(_payload(cpu, 1000.0 * (i + 1))))
    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("intro\n<!-- rnn_speed:start -->\nold\n<!-- rnn_speed:end -->\noutro\n")
    report.main(["--results", str(tmp_path), "--doc", str(doc)])
    text = doc.read_text()
    assert "old" not in text and text.startswith("intro") and text.rstrip().endswith("outro")
    assert "### AMD EPYC (avx2)" in text and "### Intel(R) Xeon(R) Processor (amx)" in text
    assert "| H=8 B=2 | tz | graph | 1,000 |" in text and "| H=8 B=2 | tz | graph | 2,000 |" in text
    assert "40%" in text


def test_publish_writes_the_json_the_section_and_prints_the_table(tmp_path, capsys):
    import argparse

    doc = tmp_path / "BENCHMARKS.md"
    doc.write_text("intro\n")
    args = argparse.Namespace(out=tmp_path / "bench" / "x.json", doc=doc)
    for rate in (1, 2):  # a second run replaces the section
        report.publish({"rate": rate}, args, "x", "## X", lambda r: f"| rate | {r['rate']} |")
    assert json.loads(args.out.read_text()) == {"rate": 2}
    assert doc.read_text() == "intro\n\n## X\n\n<!-- x:start -->\n| rate | 2 |\n<!-- x:end -->\n"
    assert capsys.readouterr().out.splitlines() == ["| rate | 1 |", "| rate | 2 |"]
    assert report.command_line("bench.x", ["--a", "1"]) == "python -m bench.x --a 1"


def test_roofline_counts_every_matmul_of_a_training_step():
    units, batch, steps, vocab, gates = 10, 3, 7, 5, 40
    matmuls = roofline.step_matmuls(units, batch, steps, vocab, vocab, gates)
    flops = sum(m.flops * m.count for m in matmuls)
    tokens = steps * batch
    # forward: x W, h U per step, h V; backward: two matmuls for each forward one.
    forward = 2 * tokens * (vocab * gates + units * gates + units * vocab)
    assert flops == 3 * forward
    result = roofline.bound(units, batch, steps, vocab, vocab, gates)
    assert result["tokens_per_s"] > 0 and len(result["gflops"]) == len({(m.m, m.k, m.n) for m in matmuls})


def test_a_mixed_precision_run_has_its_own_file_and_table_after_the_float32_one(tmp_path):
    cpu = "Intel(R) Xeon(R) Processor (amx)"
    path = json_path(cpu, "mixed_bfloat16")
    assert path.name == "rnn_speed-intel-xeon-processor-amx-mixed-bfloat16.json" != json_path(cpu).name
    mixed = _payload(cpu, 3000.0)
    mixed["environment"]["precision"] = "mixed_bfloat16"
    (tmp_path / path.name).write_text(json.dumps(mixed))
    (tmp_path / json_path(cpu).name).write_text(json.dumps(_payload(cpu, 1000.0)))
    text = report.render_all(tmp_path)
    plain, apart = text.index(f"### {cpu}\n"), text.index(f"### {cpu}, mixed_bfloat16 (apart")
    assert plain < apart and text.index("| 1,000 |") < apart < text.index("| 3,000 |")


def test_loop_ops_times_each_kind_of_work_in_both_implementations():
    import pytest

    from bench import loop_ops

    for kind in loop_ops.KINDS:
        for xla in (True, False):
            assert loop_ops.per_step_us(kind, units=4, batch=2, xla=xla, steps=3, repeats=1) > 0
    with pytest.raises(ValueError, match="unknown kind"):
        loop_ops.per_step_us("softmax", units=4, batch=2, xla=False, steps=3, repeats=1)


def test_loop_ops_times_the_same_work_in_pytorch_and_a_whole_recurrence():
    import pytest

    from bench import loop_ops

    whole = loop_ops.recurrence_us(units=4, batch=2, steps=3, repeats=1)
    assert whole["tz_zoneout_lstm"] > 0
    pytest.importorskip("torch")
    assert whole["torch_lstm"] > 0
    for kind in loop_ops.KINDS:
        assert loop_ops.torch_per_step_us(kind, units=4, batch=2, steps=3, repeats=1) > 0
    with pytest.raises(ValueError, match="unknown kind"):
        loop_ops.torch_per_step_us("softmax", units=4, batch=2, steps=3, repeats=1)


def test_shapes_argument_parses_hxb_lists_and_names_a_bad_one():
    import argparse

    import pytest

    from bench.shapes import parse_shapes

    assert parse_shapes("1000x32, 256X64") == [(1000, 32), (256, 64)]
    for bad in ("256", "256x", "0x64", "256x64x2", "ax64"):
        with pytest.raises(argparse.ArgumentTypeError, match="is not HxB"):
            parse_shapes(bad)


def test_the_gpu_benchmark_runs_its_variants_and_writes_json_and_table(tmp_path, capsys):
    """On a CPU too (``--smoke``): every variant is built and timed, ratios to Keras's layer."""
    from bench import gpu_speed

    assert gpu_speed.main(["--smoke", "--precisions", "float32", "--out", str(tmp_path)]) == 0
    (path,) = tmp_path.glob("gpu-*.json")
    payload = json.loads(path.read_text())
    rows = payload["results"]["float32"]["H=8 B=4"]
    assert set(gpu_speed.keras_variants(8)) <= set(rows)
    assert rows[gpu_speed.REFERENCE]["ratio_to_cudnn"] == 1.0
    assert all(row["tokens_per_s"] > 0 for row in rows.values())
    assert rows["tz zoneout on (graph)"]["implementation"] == "graph"
    assert "| float32 | H=8 B=4 | tz zoneout on (xla) | xla |" in capsys.readouterr().out


def test_gpu_check_stops_at_once_without_a_gpu():
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    done = subprocess.run(
        [sys.executable, str(root / "tests" / "gpu_check.py"), "--python", sys.executable],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 2 and "TensorFlow sees no GPU here" in done.stderr
