"""The exported signatures' declaration (tf_zoneout.saved_model.signatures) is what exports have,
what the docs list, and what export enforces."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import tensorflow as tf

from tf_zoneout import export
from tf_zoneout.saved_model import export_graph, signatures
from tf_zoneout.saved_model.model_base import ModelKind

EXPORT_DOC = Path(__file__).parent.parent / "docs" / "guide" / "export.md"


@pytest.mark.parametrize(
    ("task", "kind"),
    [
        ("char_ptb", ModelKind.LANGUAGE_MODEL),
        ("seq2seq", ModelKind.SEQ2SEQ),
        ("pmnist", ModelKind.CLASSIFIER),
    ],
)
def test_each_export_has_exactly_the_declared_signatures(smoke_run, task, kind):
    _, run_dir, _ = smoke_run(task, with_trainer=False)
    found = export_graph.signature_inputs(run_dir / "export")
    declared = signatures.SIGNATURES[kind]
    assert set(found) == {s.key for s in declared}
    for signature in declared:
        assert set(found[signature.key]) == set(signature.input_names)
        for t in signature.inputs:
            spec = found[signature.key][t.name]
            assert spec["dtype"] == t.dtype
            # A size the declaration leaves free (the state's S) is the model's own in the export.
            assert len(spec["shape"]) == len(t.shape)
            assert all(d is None or d == s for d, s in zip(t.shape, spec["shape"]))
        loaded = tf.saved_model.load(str(run_dir / "export"))
        assert set(loaded.signatures[signature.key].structured_outputs) == set(signature.output_names)


def test_the_export_guide_lists_every_input_and_output():
    rows = {}
    for line in EXPORT_DOC.read_text().splitlines():
        cells = [c.strip() for c in line.split("|")]
        if len(cells) == 5 and cells[2].startswith("`"):
            rows[(cells[1], cells[2].strip("`"))] = cells[3]
    kinds = {
        ModelKind.LANGUAGE_MODEL: "language model",
        ModelKind.SEQ2SEQ: "seq2seq",
        ModelKind.CLASSIFIER: "pMNIST",
    }
    for kind, declared in signatures.SIGNATURES.items():
        for signature in declared:
            row = rows[(kinds[kind], signature.key)]
            for name in signature.input_names + signature.output_names:
                assert f"`{name}`" in row, (signature.key, name)


def test_request_builders_broadcast_one_value_and_refuse_a_wrong_count():
    inputs = signatures.generate_inputs(["a", "b"], max_new_tokens=[3, 4], seed=9)
    assert list(inputs) == list(signatures.GENERATE.input_names)
    assert inputs["prompt"].tolist() == [b"a", b"b"] and inputs["seed"].tolist() == [9, 9]
    assert inputs["max_new_tokens"].dtype == np.int32 and inputs["top_p"].dtype == np.float32
    with pytest.raises(ValueError, match="one value or 2 values"):
        signatures.generate_inputs(["a", "b"], temperature=[1.0, 1.0, 1.0])
    assert signatures.text_inputs(["\u2603"])["text"].tolist() == ["\u2603".encode()]
    summary = signatures.score_summary(
        {"bits_per_token": [2.0], "num_tokens": [4], "nll": [5.5], "num_unknown": [0]}, "char"
    )
    assert summary == {
        "unit": "character",
        "num_tokens": 4,
        "bits_per_token": 2.0,
        "perplexity": 4.0,
        "nll": 5.5,
        "num_unknown": 0,
    }


class _WrongOutputs:
    """A classifier module whose signature returns an output the declaration does not have."""

    kind = ModelKind.CLASSIFIER

    def __init__(self):
        self.signatures = {"serving_default": self.classify}

    @tf.function(input_signature=signatures.CLASSIFY.tensor_specs(), autograph=False)
    def classify(self, pixels):
        return {
            "probabilities": pixels[:, :10],
            "label": tf.zeros([tf.shape(pixels)[0]], tf.int64),
            "x": pixels,
        }


def test_an_export_whose_outputs_differ_from_the_declaration_is_refused():
    with pytest.raises(export.ExportError, match=r"lacks \[\] and adds \['x'\]"):
        export._check_declared(_WrongOutputs())
    wrong = _WrongOutputs()
    wrong.signatures = {"classify": wrong.classify}
    with pytest.raises(export.ExportError, match="has the signatures"):
        export._check_declared(wrong)


def test_loading_an_export_warns_of_nothing(smoke_run):
    """Serving needs no gradients: an export's functions hold no custom gradient (inference runs the
    layers' loops inline), so loading one logs no "unsaved custom gradients" warning (``zoneout serve``
    printed one per function at every start)."""
    import subprocess
    import sys

    folders = [
        str(smoke_run(task, with_trainer=False)[1] / "export") for task in ("char_ptb", "seq2seq", "pmnist")
    ]
    code = "import sys, tensorflow as tf\nfor folder in sys.argv[1:]: tf.saved_model.load(folder)"
    loaded = subprocess.run(
        [sys.executable, "-c", code, *folders], capture_output=True, text=True, timeout=300
    )
    assert loaded.returncode == 0, loaded.stderr[-2000:]
    assert "custom gradient" not in loaded.stderr
