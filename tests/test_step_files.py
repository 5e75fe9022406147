"""The token-level ``step`` outside TensorFlow: the export's step, resume and state against its own
generate and score, the step files converted by the real converters (TFLite, tf2onnx) and run by the
real runtimes (LiteRT with XNNPack, onnxruntime), and the docs' decoding example as a user runs it."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_zoneout import step_files
from tf_zoneout.saved_model import export_graph
from tf_zoneout.saved_model.model_base import read_metadata
from tf_zoneout.saved_model.signatures import generate_inputs, read_inputs, resume_inputs, text_inputs
from tf_zoneout.saved_model.text_codec import VOCABULARY_FILE
from tf_zoneout_train.cli import main

EXAMPLE = Path(__file__).parent.parent / "docs" / "examples" / "decode_outside_tensorflow.py"
TEXTS = {"char_ptb": "the company said its profit rose", "word_ptb": "the company said its profit rose"}


@pytest.fixture(scope="module", params=["char_ptb", "word_ptb"])
def converted(request, smoke_run, tmp_path_factory):
    """(task, a copy of the smoke run's export with step.tflite and step.onnx written into it)."""
    _, run_dir, _ = smoke_run(request.param, with_trainer=False)
    directory = tmp_path_factory.mktemp(f"step-{request.param}") / "1"
    shutil.copytree(run_dir / "export", directory)
    written = step_files.write_step_files(directory, ["tflite", "onnx"])
    assert [p.name for p in written] == ["step.tflite", "step.onnx"]
    return request.param, directory


def _call(function, inputs: dict) -> dict:
    return {k: v.numpy() for k, v in function(**{k: tf.constant(v) for k, v in inputs.items()}).items()}


def test_step_and_resume_continue_exactly_what_generate_and_score_compute(converted):
    _, directory = converted
    loaded = tf.saved_model.load(str(directory))
    generate, resume, step, score = (
        loaded.signatures[k] for k in ("serving_default", "resume", "step", "score")
    )
    metadata = read_metadata(directory)["step"]
    assert metadata["state_size"] == sum(part["size"] for part in metadata["state_layout"])
    # Penalties count the tokens of earlier calls: resume carries the counts.
    choice = dict(seed=[3, 4], frequency_penalty=[0.0, 1.5], presence_penalty=[0.7, 0.0])
    for temperature in (0.0, 1.0):
        whole = _call(
            generate, generate_inputs(["the ", "a"], max_new_tokens=12, temperature=temperature, **choice)
        )
        head = _call(
            generate, generate_inputs(["the ", "a"], max_new_tokens=5, temperature=temperature, **choice)
        )
        tail = _call(
            resume,
            resume_inputs(
                head["state"], 5, head["token_counts"], max_new_tokens=7, temperature=temperature, **choice
            ),
        )
        np.testing.assert_array_equal(
            np.concatenate([head["token_ids"], tail["token_ids"]], 1), whole["token_ids"]
        )
        np.testing.assert_allclose(tail["state"], whole["state"], atol=1e-6)
        counts = np.stack(
            [np.bincount(row, minlength=tail["token_counts"].shape[1]) for row in whole["token_ids"]]
        )
        np.testing.assert_array_equal(tail["token_counts"], counts)
    # Scoring through step gives the score signature's total nll: read the ids generate made.
    ids = whole["token_ids"][0]
    state = np.zeros([1, metadata["state_size"]], np.float32)
    token, nll = metadata["start_id"], 0.0
    for target in ids:
        out = _call(step, {"token": np.array([token], np.int32), "state": state})
        nll -= float(out["logprobs"][0, target])
        state, token = out["state"], target
    scored = _call(score, {"text": np.array([whole["text"][0]], object)})
    assert scored["num_tokens"][0] == len(ids)
    np.testing.assert_allclose(nll, scored["nll"][0], rtol=1e-4)


def test_penalties_and_logit_bias_change_the_choice_but_not_the_reported_logprobs(converted):
    _, directory = converted
    loaded = tf.saved_model.load(str(directory))
    generate = loaded.signatures["serving_default"]
    plain = _call(generate, generate_inputs(["the "], max_new_tokens=12, temperature=0.0))
    never_twice = _call(
        generate, generate_inputs(["the "], max_new_tokens=12, temperature=0.0, frequency_penalty=2.0)
    )
    vocab = plain["token_counts"].shape[1]
    bias = np.zeros([vocab], np.float32)
    bias[7] = 100.0
    forced = _call(generate, generate_inputs(["the "], max_new_tokens=12, temperature=0.0, logit_bias=bias))
    assert len(set(plain["token_ids"][0])) < 12 <= vocab  # the smoke model repeats itself
    assert len(set(never_twice["token_ids"][0])) > len(set(plain["token_ids"][0]))
    assert set(forced["token_ids"][0]) == {7}
    # The log-probability reported is the model's, whatever chose the token: score's of the same text.
    text = "the " + json.loads((directory / VOCABULARY_FILE).read_text())["text"][7]
    scored = _call(loaded.signatures["score"], text_inputs([text]))
    last = scored["num_tokens"][0] - 1
    assert forced["token_logprobs"][0, 0] == pytest.approx(scored["token_logprobs"][0, last], abs=1e-5)


def test_tokenize_and_read_give_the_ids_and_logprobs_of_score_and_the_state_of_generate(converted):
    task, directory = converted
    loaded = tf.saved_model.load(str(directory))
    vocabulary = json.loads((directory / VOCABULARY_FILE).read_text())
    text = TEXTS[task]
    tokens = _call(loaded.signatures["tokenize"], text_inputs([text, ""]))
    ids = tokens["token_ids"][0, : tokens["num_tokens"][0]].tolist()
    assert tokens["num_tokens"][1] == 0 and ids
    assert [vocabulary["text"][i] for i in ids] == [t.decode() for t in tokens["tokens"][0, : len(ids)]]
    read = _call(loaded.signatures["read"], read_inputs([[vocabulary["start_id"], *ids], ids, []]))
    scored = _call(loaded.signatures["score"], text_inputs([text]))
    np.testing.assert_allclose(
        read["token_logprobs"][0, 1 : len(ids) + 1], scored["token_logprobs"][0], atol=1e-5
    )
    assert read["token_logprobs"][0, 0] == 0 and read["token_logprobs"][1, 0] == 0  # nothing precedes them
    joined = "".join if task == "char_ptb" else " ".join
    assert read["text"][1].decode() == joined(vocabulary["text"][i] for i in ids) and read["text"][2] == b""
    np.testing.assert_array_equal(read["state"][2], 0.0)
    # ``resume`` from the state after the start token and the text continues as ``serving_default`` does.
    generated = _call(
        loaded.signatures["serving_default"], generate_inputs([text], max_new_tokens=9, temperature=0.0)
    )
    resumed = _call(
        loaded.signatures["resume"], resume_inputs(read["state"][:1], 0, max_new_tokens=9, temperature=0.0)
    )
    np.testing.assert_array_equal(resumed["token_ids"], generated["token_ids"])


def test_the_step_files_compute_the_step_at_any_batch(converted):
    _, directory = converted
    metadata = read_metadata(directory)["step"]
    step = tf.saved_model.load(str(directory)).signatures["step"]
    for fmt in ("tflite", "onnx"):
        run = step_files.runner(fmt, directory / step_files.FILES[fmt])
        for batch in (1, 5):
            tokens = np.arange(batch, dtype=np.int32) % metadata["vocab_size"]
            state = np.random.default_rng(batch).normal(0, 0.3, [batch, metadata["state_size"]]).astype("f")
            expected = _call(step, {"token": tokens, "state": state})
            logprobs, new_state = run(tokens, state)
            np.testing.assert_allclose(logprobs, expected["logprobs"], atol=step_files.TOLERANCE)
            np.testing.assert_allclose(new_state, expected["state"], atol=step_files.TOLERANCE)


def test_the_step_signature_holds_no_loop_string_or_random_op(converted):
    _, directory = converted
    assert export_graph.problems(directory, loop_free=["step"]) == []
    ops = export_graph.signature_ops(directory, "step")
    assert not any(export_graph.NOT_LOOP_FREE.search(op) or export_graph.RANDOM.search(op) for op in ops)
    # The check itself finds a loop where there is one.
    assert any("loop-free" in p for p in export_graph.problems(directory, loop_free=["serving_default"]))


def test_a_step_file_that_disagrees_is_refused(converted):
    _, directory = converted
    metadata = read_metadata(directory)["step"]
    run = step_files.runner("onnx", directory / "step.onnx")

    def off(token, state):
        logprobs, new_state = run(token, state)
        return logprobs, new_state + 1e-3

    with pytest.raises(step_files.StepFileError, match="state differs"):
        step_files.check_step_file("onnx", off, run, metadata)


@pytest.mark.parametrize("runtime", ["litert", "onnxruntime"])
def test_the_docs_example_decodes_and_scores_as_the_export_does(converted, runtime):
    """The example, run as a user runs it (a process without TensorFlow imported), gives the export's
    greedy text and its score."""
    task, directory = converted
    loaded = tf.saved_model.load(str(directory))
    prompt = "the company "
    greedy = _call(
        loaded.signatures["serving_default"], generate_inputs([prompt], max_new_tokens=30, temperature=0.0)
    )
    scored = _call(loaded.signatures["score"], {"text": np.array([TEXTS[task].encode()], object)})

    def example(*args) -> dict:
        command = [sys.executable, str(EXAMPLE), str(directory), "--runtime", runtime, *args]
        result = subprocess.run(command, capture_output=True, text=True, timeout=120)
        assert result.returncode == 0, result.stderr[-3000:]
        return json.loads(result.stdout.strip().splitlines()[-1])

    assert example("--prompt", prompt, "--max-new-tokens", "30")["text"] == greedy["text"][0].decode()
    found = example("--score", TEXTS[task])
    assert found["num_tokens"] == scored["num_tokens"][0]
    np.testing.assert_allclose(found["nll"], scored["nll"][0], rtol=1e-4)


def test_zoneout_export_writes_checked_step_files_or_nothing(smoke_run, tmp_path, capsys, monkeypatch):
    _, run_dir, _ = smoke_run("char_ptb", with_trainer=False)
    base = tmp_path / "models"
    assert (
        main(["export", str(run_dir), "--model-base", str(base), "--name", "lm", "--tflite", "--onnx"]) == 0
    )
    version = base / "lm" / "1"
    assert {"step.tflite", "step.onnx", VOCABULARY_FILE, "saved_model.pb"} <= {
        p.name for p in version.iterdir()
    }
    capsys.readouterr()
    # A missing converter: one line naming the extra, and no new version.
    real = step_files.importlib.util.find_spec
    monkeypatch.setattr(step_files.importlib.util, "find_spec", lambda m: None if m == "tf2onnx" else real(m))
    assert main(["export", str(run_dir), "--model-base", str(base), "--name", "lm", "--onnx"]) == 1
    err = capsys.readouterr().err
    assert "tf2onnx" in err and "tf-zoneout[edge]" in err and len(err.strip().splitlines()) == 1
    assert sorted(p.name for p in (base / "lm").iterdir()) == ["1"]
