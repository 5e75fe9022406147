"""What each kind of model can be asked to do, and the answer when it cannot.

The contract: a route names an operation; a model that does not offer it answers 404 (the operation
does not exist for that model, as a path that does not exist), with a message naming what the model
does offer and where. ``GET /v1/models/{name}`` lists a model's ``operations``.
"""

from __future__ import annotations

import enum

from tf_zoneout.saved_model.model_base import ModelKind
from tf_zoneout_serve.errors import ApiError


class Operation(enum.StrEnum):
    GENERATE = "generate"
    GENERATE_STREAM = "generate_stream"
    SCORE = "score"
    COMPLETIONS = "completions"
    TOKENIZE = "tokenize"
    PREDICT = "predict"

    def route(self, model_name: str) -> str:
        """The request line of this operation for ``model_name``."""
        if self is Operation.COMPLETIONS:
            return f"POST /v1/completions (model {model_name!r})"
        if self is Operation.TOKENIZE:
            return f"POST /models/{model_name}/tokenize, detokenize; GET /models/{model_name}/tokenizer_info"
        return f"POST /v1/models/{model_name}/{self.value}"


OPERATIONS: dict[ModelKind, tuple[Operation, ...]] = {
    ModelKind.LANGUAGE_MODEL: (
        Operation.GENERATE,
        Operation.GENERATE_STREAM,
        Operation.SCORE,
        Operation.COMPLETIONS,
        Operation.TOKENIZE,
        Operation.PREDICT,
    ),
    ModelKind.SEQ2SEQ: (Operation.GENERATE, Operation.GENERATE_STREAM, Operation.PREDICT),
    ModelKind.CLASSIFIER: (Operation.PREDICT,),
    ModelKind.SAVED_MODEL: (Operation.PREDICT,),
}

DESCRIPTIONS = {
    ModelKind.LANGUAGE_MODEL: "a language model",
    ModelKind.SEQ2SEQ: "a seq2seq model",
    ModelKind.CLASSIFIER: "an image classifier",
    ModelKind.SAVED_MODEL: "a SavedModel without tf-zoneout metadata",
}


def require(model_name: str, kind: ModelKind, operation: Operation, param: str | None = None) -> None:
    """Nothing if a model of ``kind`` offers ``operation``; else ApiError 404 saying what it offers.
    ``param``: the request field that named the model (OpenAI's envelope reports it)."""
    offered = OPERATIONS[kind]
    if operation in offered:
        return
    routes = "; ".join(op.route(model_name) for op in offered)
    raise ApiError(
        404,
        f"model {model_name!r} is {DESCRIPTIONS[kind]}: it has no {operation.value} operation "
        f"(it offers {', '.join(offered)}: {routes})",
        "unsupported_operation",
        param=param,
    )
