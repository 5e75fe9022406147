"""Greedy decoding and scoring with a language-model export's step file, outside TensorFlow: NumPy
with LiteRT (``step.tflite``) or onnxruntime (``step.onnx``). It imports neither TensorFlow nor
tf-zoneout; it reads the export's ``vocab.json`` and ``metadata.json`` and calls the step, one token
per call, the state carried on the host (as a speech decoder runs its decoder step).

    python decode_outside_tensorflow.py models/char_lm/1 --runtime litert --prompt "the company "
    python decode_outside_tensorflow.py models/char_lm/1 --runtime onnxruntime --score "the company said"

The greedy text is the service's at temperature 0 for the same prompt, and the score's total
negative log-likelihood is the ``score`` signature's.
"""

from __future__ import annotations

import argparse
import json
import re
from pathlib import Path

import numpy as np


def load_step(version_dir: Path, runtime: str):
    """``step(token [B] int32, state [B, S] float32) -> (logprobs [B, V], state [B, S])``."""
    if runtime == "litert":
        from ai_edge_litert.interpreter import Interpreter

        runner = Interpreter(model_path=str(version_dir / "step.tflite")).get_signature_runner("step")

        def step(token, state):
            outputs = runner(token=token, state=state)
            return outputs["logprobs"], outputs["state"]

        return step
    import onnxruntime

    session = onnxruntime.InferenceSession(str(version_dir / "step.onnx"), providers=["CPUExecutionProvider"])
    return lambda token, state: tuple(
        session.run(["logprobs", "new_state"], {"token": token, "state": state})
    )


class Vocabulary:
    """Text <-> ids as the export's own in-graph codec maps them (the rules of ``vocab.json``)."""

    def __init__(self, path: Path):
        document = json.loads(path.read_text())
        self.level, self.text, self.start_id = document["level"], document["text"], document["start_id"]
        self.unknown_id, self.space = document["unknown_id"], document["space"]
        self.index = {token: i for i, token in enumerate(document["tokens"])}
        self.eol = document["tokens"][document["eol_id"]] if document["eol_id"] >= 0 else None

    def encode(self, text: str) -> list[int]:
        if self.level == "word":
            pieces = text.replace("\n", f" {self.eol} ").split() if self.eol else text.split()
        else:
            pieces = [self.space if c == " " else (self.eol if c == "\n" and self.eol else c) for c in text]
        ids = []
        for piece in pieces:  # as written, else in ASCII lower case (TensorFlow's lower)
            found = self.index.get(
                piece, self.index.get("".join(c.lower() if c.isascii() else c for c in piece))
            )
            if found is not None or self.level == "word":  # an unknown character is skipped
                ids.append(self.unknown_id if found is None else found)
        return ids

    def decode(self, ids: list[int]) -> str:
        """A continuation's text: words each after a space, none around a newline."""
        if self.level == "char":
            return "".join(self.text[i] for i in ids)
        return re.sub(" ?\n ?", "\n", "".join(" " + self.text[i] for i in ids))


def read(step, vocabulary: Vocabulary, state_size: int, ids: list[int]):
    """Feed the start token and ``ids``: the log-probabilities after each, and the last state."""
    state = np.zeros([1, state_size], np.float32)
    logprobs = []
    for token in [vocabulary.start_id, *ids]:
        out, state = step(np.array([token], np.int32), state)
        logprobs.append(out[0])
    return logprobs, state


def greedy(step, vocabulary: Vocabulary, state_size: int, prompt: str, max_new_tokens: int) -> str:
    """The prompt's greedy continuation (argmax at every step, the first on ties, as the service)."""
    logprobs, state = read(step, vocabulary, state_size, vocabulary.encode(prompt))
    made, last = [], logprobs[-1]
    for _ in range(max_new_tokens):
        token = int(np.argmax(last))
        made.append(token)
        out, state = step(np.array([token], np.int32), state)
        last = out[0]
    return vocabulary.decode(made)


def score(step, vocabulary: Vocabulary, state_size: int, text: str) -> tuple[float, int]:
    """(total negative log-likelihood in nats, tokens scored) of ``text``."""
    ids = vocabulary.encode(text)
    logprobs, _ = read(step, vocabulary, state_size, ids)
    return -float(sum(lp[i] for lp, i in zip(logprobs, ids))), len(ids)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("version_dir", type=Path, help="an export's version folder (holds step.tflite/onnx)")
    parser.add_argument("--runtime", choices=["litert", "onnxruntime"], default="litert")
    parser.add_argument("--prompt", default="", help="greedy continuation of this text")
    parser.add_argument("--max-new-tokens", type=int, default=40)
    parser.add_argument("--score", help="print this text's negative log-likelihood instead")
    args = parser.parse_args()
    state_size = json.loads((args.version_dir / "metadata.json").read_text())["step"]["state_size"]
    vocabulary = Vocabulary(args.version_dir / "vocab.json")
    step = load_step(args.version_dir, args.runtime)
    if args.score is not None:
        nll, count = score(step, vocabulary, state_size, args.score)
        print(json.dumps({"nll": nll, "num_tokens": count}))
    else:
        print(json.dumps({"text": greedy(step, vocabulary, state_size, args.prompt, args.max_new_tokens)}))


if __name__ == "__main__":
    main()
