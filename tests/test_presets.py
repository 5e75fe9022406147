"""The presets say what the paper says; --dry-run shows them; the loss scale is a visible choice."""

from __future__ import annotations

import json
import subprocess

import pytest

from tf_zoneout_train import config as config_lib
from tf_zoneout_train import presets

# (task, preset, field, value, where the paper (or Zaremba et al.) says so)
PAPER_VALUES = [
    ("char_ptb", "paper", "units", 1000, "4.1.1"),
    ("char_ptb", "paper", "seq_len", 100, "4.1.1"),
    ("char_ptb", "paper", "batch_size", 32, "4.1.1"),
    ("char_ptb", "paper", "optimizer", "adam", "4.1.1"),
    ("char_ptb", "paper", "learning_rate", 0.002, "4.1.1"),
    ("char_ptb", "paper", "clip_norm", 1.0, "4.1.1"),
    ("char_ptb", "paper", "init", "orthogonal", "4.1.1"),
    ("char_ptb", "paper", "zoneout_cells", 0.5, "4.1.1"),
    ("char_ptb", "paper", "zoneout_states", 0.05, "4.1.1"),
    ("word_ptb", "paper", "units", 1500, "4.1.2 (Zaremba large)"),
    ("word_ptb", "paper", "num_layers", 2, "4.1.2"),
    ("word_ptb", "paper", "seq_len", 35, "4.1.2"),
    ("word_ptb", "paper", "batch_size", 20, "4.1.2"),
    ("word_ptb", "paper", "init_scale", 0.04, "4.1.2"),
    ("word_ptb", "paper", "learning_rate", 1.0, "4.1.2"),
    ("word_ptb", "paper", "lr_decay_start", 14, "4.1.2"),
    ("word_ptb", "paper", "lr_decay", 1 / 1.15, "4.1.2"),
    ("word_ptb", "paper", "clip_norm", 10.0, "4.1.2"),
    ("word_ptb", "paper", "epochs", 55, "4.1.2"),
    ("word_ptb", "paper", "dropout", 0.65, "4.1.2"),
    ("word_ptb", "paper", "zoneout_cells", 0.25, "4.1.2"),
    ("word_ptb", "paper", "zoneout_states", 0.025, "4.1.2"),
    ("word_ptb", "paper", "loss_reduction", "sum_over_time", "Zaremba's loss scale"),
    ("word_ptb", "small", "units", 200, "Table 1 unregularized row = Zaremba small"),
    ("word_ptb", "small", "embedding_dim", 200, "Zaremba small"),
    ("word_ptb", "small", "num_layers", 2, "Zaremba small"),
    ("word_ptb", "small", "seq_len", 20, "Zaremba small"),
    ("word_ptb", "small", "batch_size", 20, "Zaremba small"),
    ("word_ptb", "small", "init", "uniform", "Zaremba small"),
    ("word_ptb", "small", "init_scale", 0.1, "Zaremba small"),
    ("word_ptb", "small", "optimizer", "sgd", "Zaremba small"),
    ("word_ptb", "small", "learning_rate", 1.0, "Zaremba small"),
    ("word_ptb", "small", "lr_decay_start", 4, "Zaremba small"),
    ("word_ptb", "small", "lr_decay", 0.5, "Zaremba small"),
    ("word_ptb", "small", "epochs", 13, "Zaremba small"),
    ("word_ptb", "small", "clip_norm", 5.0, "Zaremba small"),
    ("word_ptb", "small", "dropout", 0.0, "Zaremba small"),
    ("word_ptb", "small", "zoneout_cells", 0.0, "Zaremba small"),
    ("word_ptb", "small", "zoneout_states", 0.0, "Zaremba small"),
    ("word_ptb", "small", "patience", 0, "Zaremba small: no early stopping"),
    ("word_ptb", "small", "loss_reduction", "sum_over_time", "Zaremba's loss scale"),
    ("text8", "paper", "units", 2000, "4.2"),
    ("text8", "paper", "batch_size", 128, "4.2"),
    ("text8", "paper", "seq_len", 180, "4.2"),
    ("text8", "paper", "learning_rate", 0.001, "4.2"),
    ("text8", "paper", "clip_norm", 1.0, "4.2"),
    ("text8", "paper", "zoneout_cells", 0.5, "4.2, Fig. 4"),
    ("text8", "paper", "zoneout_states", 0.05, "4.2, Fig. 4"),
    ("pmnist", "paper", "units", 100, "4.3"),
    ("pmnist", "paper", "optimizer", "rmsprop", "4.3"),
    ("pmnist", "paper", "rmsprop_rho", 0.5, "4.3: decay 0.5 of the moving average"),
    ("pmnist", "paper", "learning_rate", 0.001, "4.3"),
    ("pmnist", "paper", "lr_schedule", "constant", "4.3"),
    ("pmnist", "paper", "clip_norm", 1.0, "4.3"),
    ("pmnist", "paper", "epochs", 150, "4.3"),
    ("pmnist", "paper", "patience", 0, "4.3: 150 epochs, no early stopping"),
    ("pmnist", "paper", "zoneout_cells", 0.15, "4.3, Table 2"),
    ("pmnist", "paper", "zoneout_states", 0.15, "4.3, Table 2"),
    ("seq2seq", "paper", "units", 128, "original code"),
    ("seq2seq", "paper", "num_layers", 2, "original code"),
    ("seq2seq", "paper", "batch_size", 32, "original code"),
    ("seq2seq", "paper", "learning_rate", 0.01, "original code"),
    ("seq2seq", "paper", "init_scale", 0.08, "original code"),
    ("seq2seq", "paper", "clip_norm", 0.0, "original code: no clipping"),
    ("seq2seq", "paper", "lr_decay", 0.95, "original code"),
    ("seq2seq", "paper", "zoneout_cells", 0.05, "original code"),
]


@pytest.mark.parametrize(("task", "preset", "field", "value", "section"), PAPER_VALUES)
def test_paper_presets_match_the_paper(task, preset, field, value, section):
    config = config_lib.resolve(task, preset)
    expected = pytest.approx(value) if isinstance(value, float) else value
    assert getattr(config, field) == expected, section


def test_char_ptb_paper_trains_to_convergence_with_early_stopping():
    config = config_lib.resolve("char_ptb", "paper")
    assert config.epochs >= 200 and config.patience >= 10  # the authors' best epoch was 100


def _dry_run(capsys, *args) -> subprocess.CompletedProcess:
    """``zoneout train ARGS --dry-run`` through the command's own entry point, in this process
    (a subprocess would only add a TensorFlow start: test_console.py runs the real command)."""
    from tf_zoneout_train import cli

    capsys.readouterr()
    try:
        code = cli.main(["train", *args, "--dry-run"])
    except SystemExit as exit_:
        code = exit_.code
    out, err = capsys.readouterr()
    return subprocess.CompletedProcess(args, code, out, err)


def test_dry_run_prints_the_resolved_configuration_for_every_task_and_preset(tmp_path, capsys):
    # One process resolves them all (a process per pair would cost a TensorFlow import each);
    # the command itself is run once below.
    for task, of_task in presets.PRESET_VALUES.items():
        for preset in of_task:
            if preset == "base":
                continue
            shown = json.loads(config_lib.resolve(task, preset).to_json())
            assert shown["task"] == task and shown["preset"] == preset
    done = _dry_run(
        capsys, "word_ptb", "--preset", "small", "--run-dir", str(tmp_path / "run"), "--seed", "7"
    )
    assert done.returncode == 0, done.stderr
    shown = json.loads(done.stdout)
    assert shown["seed"] == 7 and shown["loss_reduction"] == "sum_over_time" and shown["units"] == 200
    assert not (tmp_path / "run").exists()


def test_dry_run_reports_a_bad_flag_without_a_traceback(capsys):
    done = _dry_run(capsys, "pmnist", "--preset", "paper", "--loss-reduction", "sum_over_time")
    assert done.returncode == 2
    assert "sum_over_time is for the language-model tasks" in done.stderr
    assert "Traceback" not in done.stderr


def test_configuration_shows_only_the_fields_the_task_uses():
    char = json.loads(config_lib.resolve("char_ptb", "paper").to_json())
    assert "seq2seq_task" not in char and "permute" not in char and "compare" not in char
    assert "rmsprop_rho" not in char and "lr_decay" not in char  # adam, constant learning rate
    seq2seq = json.loads(config_lib.resolve("seq2seq", "paper").to_json())
    assert "batching" not in seq2seq and seq2seq["curriculum"] is True
    pmnist = json.loads(config_lib.resolve("pmnist", "paper").to_json())
    assert pmnist["rmsprop_rho"] == 0.5 and pmnist["permute"] is True
    # What is saved loads back to the same configuration.
    config = config_lib.resolve("word_ptb", "small")
    assert config_lib.RunConfig(**json.loads(config.to_json())) == config


def test_sum_over_time_scales_the_training_step_by_the_sequence_length(tmp_path, tfds_dir):
    """One SGD step of the loop under each reduction (no clipping, no dropout, no zoneout): the weight
    change under sum_over_time is seq_len times the change under token_mean; the reported loss is
    per token under both."""
    import numpy as np
    from conftest import shared_data_dir

    from tf_zoneout_train.loop import Trainer
    from tf_zoneout_train.tasks.language_modeling import LanguageModelingTask

    shared_data_dir()  # word_ptb: skipped, with the reason, where there is no data folder
    changes, losses = {}, {}
    for reduction in config_lib.LOSS_REDUCTIONS:
        config = config_lib.resolve(
            "word_ptb",
            "smoke",
            {"loss_reduction": reduction, "clip_norm": 0.0, "zoneout_cells": 0.0, "zoneout_states": 0.0},
        )
        task = LanguageModelingTask(config, tfds_dir)  # the session's prepared data, not a second copy
        trainer = Trainer(task, tmp_path / reduction, show_progress=False)
        trainer._build()
        before = [w.copy() for w in trainer.model.get_weights()]
        batch = next(iter(task.train_batches(0)))
        carry = trainer._distribute_carry(task.initial_carry(config.batch_size))
        loss_sum, count, _, _ = trainer.train_step(batch, carry)
        losses[reduction] = float(loss_sum) / float(count)
        changes[reduction] = [a - b for a, b in zip(trainer.model.get_weights(), before)]
    assert losses["sum_over_time"] == pytest.approx(losses["token_mean"], rel=1e-6)
    for token_mean, summed in zip(changes["token_mean"], changes["sum_over_time"]):
        np.testing.assert_allclose(summed, token_mean * config.seq_len, rtol=2e-3, atol=1e-6)
