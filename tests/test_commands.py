"""The `zoneout export`, `sample` and `score` commands on a smoke-trained model."""

from __future__ import annotations

import json

from tf_zoneout_train.cli import main


def test_export_then_sample_and_score_through_the_model_base(smoke_run, tmp_path, capsys):
    _, run_dir, _ = smoke_run("char_ptb")
    base = tmp_path / "models"
    assert main(["export", str(run_dir), "--model-base", str(base), "--name", "lm"]) == 0
    assert main(["export", str(run_dir), "--model-base", str(base), "--name", "lm"]) == 0
    assert "version 2" in capsys.readouterr().out
    assert (
        main(["sample", str(base / "lm"), "--prompt", "the ", "--max-new-tokens", "12", "--seed", "3"]) == 0
    )
    first = capsys.readouterr().out
    assert (
        main(["sample", str(base / "lm" / "1"), "--prompt", "the ", "--max-new-tokens", "12", "--seed", "3"])
        == 0
    )
    assert capsys.readouterr().out == first and first.startswith("the ")
    assert main(["score", str(base / "lm"), "--text", "the bank"]) == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored["num_tokens"] == 8 and scored["bits_per_character"] > 0
    assert main(["export", str(run_dir), "--model-base", str(base), "--name", "../escape"]) == 1
    assert "model name" in capsys.readouterr().err


def test_rebuild_writes_a_runs_export_again_with_this_versions_exporter(
    smoke_run, tfds_dir, tmp_path, capsys
):
    import shutil

    from cc_loader import CcSavedModel

    from tf_zoneout.saved_model.model_base import WARMUP_FILE, read_metadata

    _, straight, _ = smoke_run("char_ptb", with_trainer=False)
    run_dir = tmp_path / "run"
    shutil.copytree(straight, run_dir)
    (run_dir / "export" / WARMUP_FILE).unlink()  # a file this version's exporter writes
    before = read_metadata(run_dir / "export")
    base = tmp_path / "models"
    assert main(["export", str(run_dir), "--model-base", str(base), "--rebuild", "--tfds-dir", tfds_dir]) == 0
    assert "rebuilt" in capsys.readouterr().out
    version = base / "run" / "1"
    assert (version / WARMUP_FILE).exists()
    assert read_metadata(version) == before  # the run's task, configuration and metrics are kept
    with CcSavedModel(version) as loaded:
        assert loaded.replay_warmup() == len(read_metadata(version)["signatures"])  # one per signature
