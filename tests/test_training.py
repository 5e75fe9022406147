"""End-to-end smoke runs of every task: train, evaluate, export, reload, compare."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import tensorflow as tf
from conftest import shared_data_dir

from tf_zoneout.saved_model.model_base import ModelKind
from tf_zoneout.saved_model.signatures import SIGNATURES, generate_inputs
from tf_zoneout_train import analysis, tasks
from tf_zoneout_train import config as config_lib
from tf_zoneout_train.loop import Trainer

RUN_FILES = (
    "config.json",
    "metrics.json",
    "learning_curve.png",
    "export/saved_model.pb",
    "export/metadata.json",
)


def smoke(task_name, run_dir, tfds_dir=None, **overrides):
    """Train ``task_name`` with the smoke preset; returns (trainer, final metrics)."""
    config = config_lib.resolve(task_name, "smoke", overrides)
    trainer = Trainer(tasks.get(config, tfds_dir), run_dir, show_progress=False)
    return trainer, trainer.run()


def assert_run_folder(run_dir, metric):
    for name in RUN_FILES:
        assert (run_dir / name).exists(), name
    assert list((run_dir / "tensorboard").glob("events.out.tfevents.*"))
    metrics = json.loads((run_dir / "metrics.json").read_text())
    assert len(metrics["epochs"]) == 2
    for epoch in metrics["epochs"]:
        assert math.isfinite(epoch["train_loss"]) and math.isfinite(epoch["validation"][metric])
    assert math.isfinite(metrics["final"]["test"][metric])
    return metrics


def in_memory_nll(task, model, text: str) -> tuple[float, int]:
    """NLL (nats) of ``text`` under the in-memory model, tokenized in Python as the export does."""
    vocabulary = task.vocabulary
    if vocabulary.dataset == "ptb_word":
        tokens = [vocabulary.eol, *text.lower().split()]
    else:
        space = "_" if vocabulary.dataset == "ptb_char" else " "
        start = vocabulary.eol or " "
        tokens = [start, *(space if ch == " " else ch for ch in text)]
    ids = np.asarray([vocabulary.encode(tokens)], np.int32)
    logits, _ = model(ids[:, :-1], training=False)
    nll = tf.nn.sparse_softmax_cross_entropy_with_logits(labels=ids[:, 1:], logits=logits)
    return float(tf.reduce_sum(nll)), ids.shape[1] - 1


def generate(signature, prompts, seeds, max_new_tokens=30, temperature=1.0, top_k=0, top_p=1.0):
    inputs = generate_inputs(prompts, max_new_tokens, temperature, top_k, top_p, seeds)
    return signature(**{k: tf.constant(v) for k, v in inputs.items()})


def check_language_model_export(trainer, run_dir, text):
    exported = tf.saved_model.load(str(run_dir / "export"))
    assert set(exported.signatures) == {s.key for s in SIGNATURES[ModelKind.LANGUAGE_MODEL]}
    assert_no_xla(run_dir / "export")
    # The exported score equals the in-memory model's loss on the same text.
    scored = exported.signatures["score"](text=tf.constant([text, text[:5]]))
    nll, count = in_memory_nll(trainer.task, trainer.model, text)
    assert int(scored["num_tokens"][0]) == count
    np.testing.assert_allclose(float(scored["nll"][0]), nll, rtol=1e-4)
    np.testing.assert_allclose(float(scored["bits_per_token"][0]), nll / count / math.log(2), rtol=1e-4)
    np.testing.assert_allclose(
        scored["token_surprisal"][0, :count].numpy().sum(), nll / math.log(2), rtol=1e-4
    )
    # Generation: deterministic for a seed, different across seeds, batch-independent.
    signature = exported.signatures["serving_default"]
    first = generate(signature, ["the ", "a"], [1, 2])
    again = generate(signature, ["the ", "a"], [1, 2])
    other = generate(signature, ["the ", "the "], [1, 3])
    np.testing.assert_array_equal(first["text"].numpy(), again["text"].numpy())
    assert first["text"].numpy()[0] == other["text"].numpy()[0]  # same prompt and seed, other batch
    assert first["text"].numpy()[0] != other["text"].numpy()[1]
    assert np.all(np.isfinite(first["logprob"].numpy())) and np.all(first["logprob"].numpy() <= 0)
    greedy = generate(signature, ["the ", "the "], [1, 2], temperature=0.0)
    assert greedy["text"].numpy()[0] == greedy["text"].numpy()[1]
    top1 = generate(signature, ["the "], [5], top_k=1)
    assert top1["text"].numpy()[0] == greedy["text"].numpy()[0]
    check_token_logprobs(signature, exported.signatures["score"], text)


def check_token_logprobs(generate_signature, score_signature, text):
    """The per-token outputs agree with the totals, and the top alternatives with the chosen tokens."""
    sampled = generate(generate_signature, ["the ", ""], [1, 2], max_new_tokens=6)
    logprobs = sampled["token_logprobs"].numpy()
    np.testing.assert_allclose(logprobs.sum(axis=1), sampled["logprob"].numpy(), rtol=1e-5, atol=1e-5)
    top = sampled["top_logprobs"].numpy()
    assert top.shape == (2, 6, 5) and np.all(np.diff(top, axis=2) <= 0)  # most likely first
    assert np.all(logprobs <= top[:, :, 0] + 1e-6)  # no token is likelier than the likeliest
    greedy = generate(generate_signature, ["the "], [1], max_new_tokens=6, temperature=0.0)
    np.testing.assert_array_equal(greedy["tokens"].numpy()[0], greedy["top_tokens"].numpy()[0, :, 0])
    np.testing.assert_allclose(greedy["token_logprobs"].numpy()[0], greedy["top_logprobs"].numpy()[0, :, 0])
    scored = score_signature(text=tf.constant([text]))
    np.testing.assert_allclose(
        scored["token_logprobs"].numpy(),
        -scored["token_surprisal"].numpy() * math.log(2),
        rtol=1e-5,
        atol=1e-6,
    )
    assert np.all(scored["token_logprobs"].numpy() <= scored["top_logprobs"].numpy()[:, :, 0] + 1e-6)


@pytest.mark.parametrize("task_name", ["char_ptb", "word_ptb"])
def test_ptb_language_model_end_to_end(task_name, smoke_run):
    trainer, run_dir, _ = smoke_run(task_name)
    metrics = assert_run_folder(run_dir, trainer.task.metric)
    test = metrics["final"]["test"]
    metric = trainer.task.metric
    assert {"loss", metric, "loss_fresh_state", f"{metric}_fresh_state"} <= set(test)
    metadata = json.loads((run_dir / "export" / "metadata.json").read_text())
    assert metadata["task"] == task_name and metadata["vocab_size"] == len(trainer.task.vocabulary)
    check_language_model_export(trainer, run_dir, "the company said it expects")


@pytest.mark.parametrize(
    ("task_name", "nothing_scorable"),
    [("char_ptb", ["", "\u0088\u00d3", "\u00e9\u00e9\u00e9"]), ("word_ptb", ["", "   ", "\t \r"])],
)
def test_signatures_are_defined_for_texts_with_nothing_to_score(task_name, nothing_scorable, smoke_run):
    """What TF Serving would be sent: texts with no known token score as zero tokens, alone or in a
    batch with a real text, and generation from such prompts (or for zero tokens) is defined."""
    _, run_dir, _ = smoke_run(task_name)
    exported = tf.saved_model.load(str(run_dir / "export"))
    score = exported.signatures["score"]
    alone = score(text=tf.constant(nothing_scorable))
    np.testing.assert_array_equal(alone["num_tokens"].numpy(), 0)
    np.testing.assert_array_equal(alone["nll"].numpy(), 0.0)
    np.testing.assert_array_equal(alone["bits_per_token"].numpy(), 0.0)
    assert alone["token_surprisal"].shape[1] == 0 and alone["tokens"].shape[1] == 0
    mixed = score(text=tf.constant([*nothing_scorable, "the company"]))
    reference = score(text=tf.constant(["the company"]))
    np.testing.assert_array_equal(mixed["num_tokens"].numpy()[:-1], 0)
    np.testing.assert_allclose(mixed["nll"].numpy()[-1], reference["nll"].numpy()[0], rtol=1e-5)
    assert mixed["token_surprisal"].shape[1] == int(reference["num_tokens"][0])
    generated = generate(
        exported.signatures["serving_default"], nothing_scorable, [1] * len(nothing_scorable)
    )
    assert np.all(generated["num_tokens"].numpy() == 30)
    assert all(len(t) > 0 for t in generated["text"].numpy())
    empty = generate(exported.signatures["serving_default"], ["the", ""], [1, 2], max_new_tokens=0)
    assert list(empty["text"].numpy()) == [b"", b""] and np.all(empty["logprob"].numpy() == 0.0)


def test_text8_language_model_on_a_small_file(small_text8, tmp_path):
    tfds_dir, _ = small_text8
    trainer, _ = smoke("text8", tmp_path / "run", tfds_dir)
    assert_run_folder(tmp_path / "run", "bpc")
    check_language_model_export(trainer, tmp_path / "run", "anarchism originated as a term")


def mixed_precision_smoke_run(tfds_dir, run_dir, precision: str, compute_dtype: str):
    """A one-epoch text8 smoke run under ``precision``: the layers compute in ``compute_dtype``, the
    weights and the export are float32, and the export scores close to the in-memory model (float32
    against the mixed model's loss: not bit-equal). Returns the trainer."""
    import keras

    trainer, final = smoke("text8", run_dir, tfds_dir, precision=precision, epochs=1)
    assert all(layer.compute_dtype == compute_dtype for layer in trainer.model.rnn_layers)
    assert all(v.dtype == tf.float32 for v in trainer.model.trainable_variables)
    assert keras.mixed_precision.global_policy().name == "float32"  # restored after the build
    assert math.isfinite(final["test"]["bpc"])
    text = "anarchism originated as a term"
    scored = tf.saved_model.load(str(run_dir / "export")).signatures["score"](text=tf.constant([text]))
    assert scored["nll"].dtype == tf.float32
    nll, count = in_memory_nll(trainer.task, trainer.model, text)
    assert int(scored["num_tokens"][0]) == count
    np.testing.assert_allclose(float(scored["nll"][0]), nll, rtol=0.02)
    return trainer


def test_mixed_bfloat16_run_computes_in_bfloat16_and_exports_float32(small_text8, tmp_path):
    mixed_precision_smoke_run(small_text8[0], tmp_path / "run", "mixed_bfloat16", "bfloat16")


def test_pmnist_end_to_end_and_classifier_export(smoke_run, tfds_dir):
    trainer, run_dir, _ = smoke_run("pmnist")
    assert_run_folder(run_dir, "error")
    exported = tf.saved_model.load(str(run_dir / "export"))
    from tf_zoneout.data import pmnist

    images, _ = next(iter(pmnist.pmnist_dataset("test", 4, permute_seed=None, tfds_dir=tfds_dir)))
    pixels = tf.reshape(images, [4, 784])
    out = exported.signatures["serving_default"](pixels=pixels)
    permuted = tf.gather(pixels, pmnist.permutation(trainer.config.seed), axis=1)[:, :, None]
    expected = tf.nn.softmax(trainer.model(permuted, training=False))
    np.testing.assert_allclose(out["probabilities"].numpy(), expected.numpy(), atol=1e-5)


def test_pmnist_with_recurrent_batchnorm_and_shared_zoneout_mask(tmp_path, tfds_dir):
    shared_data_dir()
    _, final = smoke("pmnist", tmp_path / "run", tfds_dir, cell="bn_lstm", share_mask=True)
    assert math.isfinite(final["test"]["error"])


def test_seq2seq_end_to_end_and_export(smoke_run):
    trainer, run_dir, _ = smoke_run("seq2seq")
    assert_run_folder(run_dir, "sequence_error")
    assert_no_xla(run_dir / "export")
    exported = tf.saved_model.load(str(run_dir / "export"))
    problems = ["12+34", "7+5", "99+1"]
    answers = exported.signatures["serving_default"](problem=tf.constant(problems))["answer"].numpy()
    task = trainer.task
    from tf_zoneout.data import seq2seq as data

    ids, _ = data.encode([(p, "0") for p in problems], "addition")
    decoded = trainer.model.greedy(tf.constant(ids), task.answer_len, task.go_id).numpy()
    for row, answer in zip(decoded, answers):
        text = "".join(task.symbols[i] for i in row).split(data.PAD)[0]
        assert answer.decode() == text


def test_seq2seq_curriculum_advances_the_level(tmp_path):
    # A threshold of 1.0 is met by any error below 100%; 1.01 would always be met.
    config = config_lib.resolve("seq2seq", "smoke", {"curriculum_threshold": 1.0})
    task = tasks.get(config)
    assert int(task.level.numpy()) == config.start_level
    notes = task.end_of_epoch({"sequence_error": 0.5})
    assert notes == {"curriculum_level": config.start_level + 1, "reset_best": True}
    assert task.end_of_epoch({"sequence_error": 1.0}) == {"curriculum_level": config.start_level + 1}


def test_gradient_propagation_writes_figure_and_data(tmp_path, tfds_dir):
    shared_data_dir()
    config = config_lib.resolve("gradient_propagation", "smoke", {"compare": "zoneout,unregularized"})
    results = analysis.run(config, tmp_path / "run", tfds_dir)
    data = json.loads((tmp_path / "run" / "gradient_propagation.json").read_text())
    assert (tmp_path / "run" / "gradient_propagation.png").stat().st_size > 0
    assert set(data["results"]) == {"zoneout", "unregularized"} == set(results)
    for result in data["results"].values():
        assert len(result["normalized"]) == len(data["steps"])
        np.testing.assert_allclose(sum(result["normalized"]), 1.0, rtol=1e-6)


def test_semantic_consistency_learns_w(tmp_path):
    config = config_lib.resolve(
        "semantic_consistency", "smoke", {"compare": "0,0.9", "steps_per_epoch": 150, "learning_rate": 0.05}
    )
    results = analysis.run(config, tmp_path / "run")
    assert (tmp_path / "run" / "semantic_consistency.png").stat().st_size > 0
    w_plain = np.asarray(results["no zoneout"]["w_final"])
    w_zoneout = np.asarray(results["zoneout 0.9"]["w_final"])
    # Without zoneout W stays near -I; with it, the diagonal moved towards +I.
    assert np.all(np.diag(w_plain) < -0.8)
    assert np.all(np.diag(w_zoneout) > np.diag(w_plain) + 0.1)


@pytest.mark.xla_kernel  # this module otherwise trains with the graph loop (conftest.py)
def test_a_model_with_xla_loops_exports_without_xla(tmp_path):
    """The export rebuilds the model without XLA, whatever loop the trained model used."""
    config = config_lib.resolve("seq2seq", "smoke")
    task = tasks.get(config)
    model = task.build_model(jit_compile=True)
    model(task.sample_batch(), training=False)
    task.export(model, tmp_path / "export", {"task": "seq2seq", "config": json.loads(config.to_json())})
    assert_no_xla(tmp_path / "export")


def assert_no_xla(export_dir):
    """The exported functions carry no XLA compilation (TF Serving may lack XLA)."""
    from tensorflow.core.protobuf import saved_model_pb2

    proto = saved_model_pb2.SavedModel()
    proto.ParseFromString((export_dir / "saved_model.pb").read_bytes())
    functions = proto.meta_graphs[0].graph_def.library.function
    assert functions
    for function in functions:
        assert not function.attr["_XlaMustCompile"].b, function.signature.name
        for node in function.node_def:
            assert not node.attr["_XlaMustCompile"].b, node.name
            assert node.op not in ("XlaLaunch", "_XlaCompile"), node.name


def test_restore_final_rebuilds_the_weights_the_run_was_tested_with(smoke_run, tfds_dir):
    from tf_zoneout_train.loop import weights_digest

    _, run_dir, final = smoke_run("seq2seq", with_trainer=False)
    trainer = Trainer(
        tasks.get(config_lib.load(run_dir), tfds_dir), run_dir, resume=True, show_progress=False
    )
    trainer.restore_final()
    assert weights_digest(trainer.model) == final["weights_sha256"]


def test_masked_probe_gives_the_gradient_of_a_split_sequence():
    """``cell_gradient_norms`` reads the whole sequence with masks; without regularization it must
    equal dL/dc_t computed by running the prefix [0, t) and the suffix [t, T) as separate calls."""
    import types

    import keras

    from tf_zoneout.models.recurrent import make_recurrent_layer
    from tf_zoneout_train.analysis.gradient_propagation import cell_gradient_norms
    from tf_zoneout_train.tasks.base import recurrent_spec

    config = config_lib.resolve("pmnist", "smoke", {"zoneout_cells": 0.0, "zoneout_states": 0.0})
    spec = recurrent_spec(config, jit_compile=False)
    rnn = make_recurrent_layer(spec, 5, return_sequences=False, return_state=True)
    model = types.SimpleNamespace(rnn_layers=[rnn], readout=keras.layers.Dense(10))
    rng = np.random.default_rng(0)
    x = tf.constant(rng.normal(size=(4, 12, 1)), tf.float32)
    y = tf.constant(rng.integers(0, 10, size=4))
    rnn(x)
    steps = [0, 1, 5, 11]
    expected = []
    for t in steps:
        # Two tensors: with `h = c = zeros` the tape's dL/dc would be dL/dc_0 + dL/dh_0 at t = 0
        # (the probe had exactly that bug before it read t = 0 from a fully masked prefix).
        h, c = tf.zeros([4, config.units]), tf.zeros([4, config.units])
        if t:
            _, h, c = rnn(x[:, :t], training=True)
        with tf.GradientTape() as tape:
            tape.watch(c)
            out, _, _ = rnn(x[:, t:], initial_state=[h, c], training=True)
            logits = model.readout(out)
            loss = tf.reduce_mean(tf.nn.sparse_softmax_cross_entropy_with_logits(labels=y, logits=logits))
        expected.append(float(tf.reduce_mean(tf.norm(tape.gradient(loss, c), axis=1))))
    assert min(expected) > 0
    np.testing.assert_allclose(cell_gradient_norms(model, config, x, y, steps), expected, rtol=1e-5)
