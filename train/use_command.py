"""``zoneout sample`` and ``zoneout score``: call an export's signatures (TensorFlow only).

EXPORT is a SavedModel folder, or a model folder in TF Serving's layout (its highest
version is used). Nothing of this project runs in the loop: the signatures tokenize,
sample and score inside the graph.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from tf_zoneout.saved_model import signatures
from tf_zoneout.saved_model.json_files import DamagedFileError
from tf_zoneout.saved_model.model_base import ModelKind, read_metadata, resolve_export


def _load(path: Path, command: str):
    """(loaded SavedModel, metadata), or None after printing why the export cannot be used (none
    there, or a damaged metadata.json)."""
    import tensorflow as tf

    try:
        directory = resolve_export(path)
        metadata = read_metadata(directory)
    except (FileNotFoundError, DamagedFileError) as error:
        print(f"zoneout {command}: error: {error}", file=sys.stderr)
        return None
    return tf.saved_model.load(str(directory)), metadata


def _call(model, signature: signatures.Signature, inputs: dict) -> dict:
    """``signature`` of the loaded SavedModel on ``inputs`` (NumPy arrays); its outputs as NumPy."""
    import tensorflow as tf

    outputs = model.signatures[signature.key](**{k: tf.constant(v) for k, v in inputs.items()})
    return {k: v.numpy() for k, v in outputs.items()}


def sample(args) -> int:
    loaded = _load(args.export, "sample")
    if loaded is None:
        return 1
    model, metadata = loaded
    kind = metadata.get("kind")
    if kind == ModelKind.SEQ2SEQ:
        answer = _call(model, signatures.ANSWER, signatures.answer_inputs([args.prompt]))["answer"]
        print(answer[0].decode())
        return 0
    if kind not in (None, ModelKind.LANGUAGE_MODEL):
        print(f"zoneout sample: error: a {kind} export does not generate text", file=sys.stderr)
        return 1
    inputs = signatures.generate_inputs(
        [args.prompt],
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
    )
    print(args.prompt + _call(model, signatures.GENERATE, inputs)["text"][0].decode())
    return 0


def score(args) -> int:
    if (args.text is None) == (args.file is None):
        print("zoneout score: error: give exactly one of --text or --file", file=sys.stderr)
        return 2
    text = args.text if args.text is not None else Path(args.file).read_text()
    loaded = _load(args.export, "score")
    if loaded is None:
        return 1
    model, metadata = loaded
    if signatures.SCORE.key not in model.signatures:
        print("zoneout score: error: this export has no `score` signature", file=sys.stderr)
        return 1
    out = _call(model, signatures.SCORE, signatures.text_inputs([text]))
    summary = signatures.score_summary(out, metadata.get("level"))
    result = {
        "num_tokens": summary["num_tokens"],
        f"bits_per_{summary['unit']}": summary["bits_per_token"],
        "perplexity": summary["perplexity"],
        "nll_nats": summary["nll"],
        "num_unknown": summary["num_unknown"],
    }
    print(json.dumps(result, indent=1))
    return 0


def add_parsers(subparsers) -> None:
    parser = subparsers.add_parser(
        "sample", help="generate text from an export (or answer a seq2seq problem)"
    )
    parser.add_argument("export", type=Path, help="SavedModel folder or BASE/NAME model folder")
    parser.add_argument("--prompt", default="", help="text to continue")
    parser.add_argument("--max-new-tokens", type=int, default=200)
    parser.add_argument("--temperature", type=float, default=1.0, help="<= 0 for greedy")
    parser.add_argument("--top-k", type=int, default=0, help="0: off")
    parser.add_argument("--top-p", type=float, default=1.0, help="1: off")
    parser.add_argument("--seed", type=int, default=0)
    parser.set_defaults(run=sample)
    parser = subparsers.add_parser("score", help="bits per token and perplexity of a text under an export")
    parser.add_argument("export", type=Path, help="SavedModel folder or BASE/NAME model folder")
    parser.add_argument("--text", help="the text to score")
    parser.add_argument("--file", help="a UTF-8 file to score")
    parser.set_defaults(run=score)
