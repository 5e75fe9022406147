"""train.compare_runs: curves of finished and unfinished runs beside published numbers."""

from __future__ import annotations

import json

import pytest

from tf_zoneout_train import compare_runs, run_files


def fake_run(folder, finished: bool, **config):
    folder.mkdir()
    run_files.write_json(
        folder / "config.json", {"task": "word_ptb", "seed": 1, "zoneout_cells": 0.0, **config}
    )
    epochs = [
        {
            "epoch": e,
            "train_loss": 5.0 - e,
            "train_metric": 150.0 - 10 * e,
            "seconds": 60.0,
            "validation": {"perplexity": 200.0 - 20 * e, "perplexity_fresh_state": 230.0 - 20 * e},
        }
        for e in range(3)
    ]
    metrics = {"epochs": epochs}
    if finished:
        metrics["final"] = {"test": {"perplexity": 150.0}, "best_validation": 160.0}
    run_files.write_json(folder / "metrics.json", metrics)
    return folder


def test_compare_runs_plots_references_and_unfinished_runs(tmp_path):
    done = fake_run(tmp_path / "a", True)
    going = fake_run(tmp_path / "b", False, zoneout_cells=0.5, zoneout_states=0.05, seed=2)
    out = tmp_path / "curves.png"
    with pytest.raises(SystemExit, match="--partial"):
        compare_runs.main([str(done), str(going), "--out", str(out)])
    compare_runs.main(
        [str(done), str(going), "--out", str(out), "--partial", "--reference", "paper, valid=120.7"]
    )
    assert out.stat().st_size > 0
    data = json.loads(out.with_suffix(".json").read_text())
    assert data["references"] == {"paper, valid": 120.7}
    assert [r["label"] for r in data["runs"]] == [
        "unregularized (seed 1)",
        "z_c=0.5, z_h=0.05 (seed 2) [unfinished: 3 epochs]",
    ]
    assert data["runs"][0]["test"] == {"perplexity": 150.0} and data["runs"][1]["test"] is None
    assert data["command"].startswith("python -m tf_zoneout_train.compare_runs")
