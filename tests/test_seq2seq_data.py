"""Generated seq2seq problems are correct, deterministic, and split without overlap."""

from __future__ import annotations

import contextlib
import io

import numpy as np
import pytest

from tf_zoneout.data import seq2seq


@pytest.mark.parametrize("level", [1, 3, 5])
def test_addition_answers_are_sums(level):
    for problem, answer in seq2seq.generate("addition", "train", 200, seed=0, level=level):
        a, b = problem.split("+")
        assert len(a) <= level and len(b) <= level
        assert int(answer) == int(a) + int(b)


def test_program_answers_are_what_python_prints():
    for program, answer in seq2seq.generate("program", "train", 200, seed=1, level=2):
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            exec(program, {})
        assert out.getvalue().strip() == answer


@pytest.mark.parametrize("task", seq2seq.TASKS)
def test_splits_are_disjoint_and_generation_is_seeded(task):
    problems = {
        s: {p for p, _ in seq2seq.generate(task, s, 300, seed=2, level=3)} for s in seq2seq.SPLIT_PERCENT
    }
    assert not problems["train"] & problems["validation"]
    assert not problems["train"] & problems["test"]
    assert not problems["validation"] & problems["test"]
    assert seq2seq.generate(task, "test", 50, seed=2, level=3) == seq2seq.generate(
        task, "test", 50, seed=2, level=3
    )
    assert seq2seq.generate(task, "test", 50, seed=2, level=3) != seq2seq.generate(
        task, "test", 50, seed=3, level=3
    )


def test_addition_encoding_pads_as_the_paper():
    problems, answers = seq2seq.encode([("12+345", "357")], "addition")
    symbols = seq2seq.ADDITION_SYMBOLS
    assert len(symbols) == 13
    assert problems.shape == (1, 13) and answers.shape == (1, 7)
    assert "".join(symbols[i] for i in problems[0]) == "_______12+345"
    assert "".join(symbols[i] for i in answers[0]) == "357____"


def test_dataset_batches():
    ds = seq2seq.seq2seq_dataset("program", "validation", 40, batch_size=16, seed=0)
    batches = list(ds.as_numpy_iterator())
    assert [len(b[0]) for b in batches] == [16, 16, 8]
    assert np.all(batches[0][0] < len(seq2seq.PROGRAM_SYMBOLS))


def test_bad_arguments():
    with pytest.raises(ValueError, match="task"):
        seq2seq.generate("sorting", "train", 1, 0)
    with pytest.raises(ValueError, match="level"):
        seq2seq.generate("addition", "train", 1, 0, level=6)
