"""Run every signature of every export under a model base the ways TF Serving's TensorFlow loads them.

    python tests/serving_probe.py MODEL_BASE OUT.pickle

In a fresh process (nothing of the exporting process in memory), each MODEL_BASE/NAME/1 is loaded
by the C++ loader (``TF_LoadSessionFromSavedModel`` through the C API) and by TensorFlow's
session-based loader (``tf.compat.v1.saved_model.load``: the saver's restore op, then the init op),
its TF Serving warm-up requests are replayed, and each signature runs on ``CASES`` (real and odd
inputs, alone and mixed in one batch). The outputs are pickled for the test to compare with
Python's ``tf.saved_model.load``.
"""

from __future__ import annotations

import pickle
import sys
from pathlib import Path

import numpy as np


def _strings(*texts: str) -> np.ndarray:
    return np.array([t.encode() for t in texts], dtype=object)


# Real text, empty, whitespace only, every character outside the vocabulary, and a batch mixing them.
ODD_TEXTS = ("the company said", "", "   ", "\u2603\u20ac", "the \u2603 bank\nrose")


def _sampling(rows: int, max_new_tokens, temperature, top_k, top_p, penalties=(0.0, 0.0), bias=None) -> dict:
    """The sampling inputs of ``serving_default`` and ``resume`` (no tf_zoneout import: this runs in
    an environment with TF Serving's TensorFlow alone)."""
    return {
        "max_new_tokens": np.array(max_new_tokens, np.int32),
        "temperature": np.array(temperature, np.float32),
        "top_k": np.array(top_k, np.int32),
        "top_p": np.array(top_p, np.float32),
        "seed": np.arange(1, rows + 1, dtype=np.int64),
        "frequency_penalty": np.full([rows], penalties[0], np.float32),
        "presence_penalty": np.full([rows], penalties[1], np.float32),
        "logit_bias": np.zeros([rows, 0], np.float32)
        if bias is None
        else np.tile(np.float32(bias), (rows, 1)),
    }


def _generate(prompts, *sampling, **choice):
    return {"prompt": _strings(*prompts), **_sampling(len(prompts), *sampling, **choice)}


LANGUAGE_MODEL_CASES = {
    "serving_default": [
        _generate(
            ODD_TEXTS, [5, 3, 0, 4, 6], [1.0, 0.5, 0.0, 1.0, 2.0], [0, 3, 0, 1, 10], [1.0, 0.9, 1.0, 0.5, 1.0]
        ),
        _generate([""], [4], [1.0], [0], [1.0], penalties=(1.0, -0.5)),
        _generate(["\u2603"], [2], [0.0], [0], [1.0], bias=[0.0, 0.0, 100.0]),
    ],
    "score": [{"text": _strings(*ODD_TEXTS)}, {"text": _strings("")}, {"text": _strings("\n")}],
    "tokenize": [{"text": _strings(*ODD_TEXTS)}, {"text": _strings("")}],
}
CASES = {
    "language_model": LANGUAGE_MODEL_CASES,
    "seq2seq": {
        "serving_default": [
            {"problem": _strings("3+4", "", "   ", "\u2603", "12+\u26035", "99999+99999999")},
            {"problem": _strings("")},
        ]
    },
    "classifier": {
        "serving_default": [
            {"pixels": np.zeros([1, 784], np.float32)},
            {"pixels": np.random.default_rng(0).random([3, 784], dtype=np.float32)},
            {"pixels": np.ones([2, 784], np.float32)},
        ]
    },
}


def cases_for(kind: str, metadata: dict) -> dict:
    """``CASES[kind]``, and for a language model the state-carrying signatures' cases (their state
    size is the model's own): ``resume`` from zero and random states, greedy and sampled rows mixed,
    and ``step`` from the start token and others."""
    cases = dict(CASES[kind])
    if kind == "language_model":
        step = metadata["step"]
        size, vocab, start = step["state_size"], step["vocab_size"], step["start_id"]
        state = np.random.default_rng(1).normal(0.0, 0.5, [3, size]).astype(np.float32)
        counts = np.random.default_rng(2).integers(0, 3, [3, vocab]).astype(np.int32)
        sampling = _sampling(3, [3, 0, 6], [0.0, 1.0, 0.8], [0, 0, 4], [1.0, 1.0, 0.9], penalties=(1.0, 0.5))
        position = np.array([0, 5, 100], np.int32)
        cases["resume"] = [{"state": state, "position": position, "token_counts": counts, **sampling}]
        ids = np.array([[start, 1, 2], [0, 0, 0], [vocab - 1, 0, 0]], np.int32)
        cases["read"] = [
            {"token_ids": ids, "num_tokens": np.array([3, 0, 1], np.int32)},
            {"token_ids": np.zeros([1, 0], np.int32), "num_tokens": np.zeros([1], np.int32)},
        ]
        cases["step"] = [
            {"token": np.array([start], np.int32), "state": np.zeros([1, size], np.float32)},
            {"token": np.array([start, 0, vocab - 1], np.int32), "state": state},
        ]
    return cases


def _session_loader_outputs(directory: Path, cases: dict) -> dict:
    """{signature: [outputs per case]} through ``tf.compat.v1.saved_model.load`` in a session."""
    import tensorflow as tf

    results = {}
    with tf.Graph().as_default() as graph, tf.compat.v1.Session(graph=graph) as session:
        meta_graph = tf.compat.v1.saved_model.load(session, ["serve"], str(directory))
        for signature, inputs_list in cases.items():
            definition = meta_graph.signature_def[signature]
            fetches = {k: v.name for k, v in definition.outputs.items()}
            results[signature] = [
                session.run(fetches, {definition.inputs[k].name: v for k, v in inputs.items()})
                for inputs in inputs_list
            ]
    return results


def probe(model_base: Path) -> dict:
    """{model name: {"kind", "warmup_replayed", "cc": {...}, "session": {...}}} for every model."""
    from cc_loader import CcSavedModel

    from tf_zoneout.saved_model.model_base import latest_versions, read_metadata

    found = {}
    for name, (_, directory) in latest_versions(model_base).items():
        metadata = read_metadata(directory)
        kind = metadata["kind"]
        cases = cases_for(kind, metadata)
        with CcSavedModel(directory) as loaded:
            replayed = loaded.replay_warmup()
            cc = {s: [loaded.run(s, inputs) for inputs in inputs_list] for s, inputs_list in cases.items()}
            signatures = sorted(loaded.signatures)
        found[name] = {
            "kind": kind,
            "level": metadata.get("level"),
            "signatures": signatures,
            "warmup_replayed": replayed,
            "cc": cc,
            "session": _session_loader_outputs(directory, cases),
        }
    return found


if __name__ == "__main__":
    results = probe(Path(sys.argv[1]))
    Path(sys.argv[2]).write_bytes(pickle.dumps(results))
