"""POST /v1/models/{name}/score."""

# No `from __future__ import annotations`: the body types are local names FastAPI must resolve.
from fastapi import APIRouter, Request

from tf_zoneout.saved_model import signatures
from tf_zoneout_serve.dependencies import SettingsDep, model_offering
from tf_zoneout_serve.engine import run_signature, score_body
from tf_zoneout_serve.errors import responses
from tf_zoneout_serve.operations import Operation
from tf_zoneout_serve.schemas import RequestModels, ScoreResponse

ScoringModel = model_offering(Operation.SCORE)


def build_router(models: RequestModels) -> APIRouter:
    """The score route for this server's request limits."""
    router = APIRouter()
    score_request = models.score

    @router.post(
        "/v1/models/{name}/score",
        response_model=ScoreResponse,
        responses=responses(404, 413, 415, 422, 503),
    )
    async def score(model: ScoringModel, body: score_request, request: Request, settings: SettingsDep):
        """Bits per token (per character for char models), perplexity and per-token surprisal.

        A text with nothing scorable (every character outside the vocabulary, or only whitespace for a
        word model) gives num_tokens 0, bits_per_token 0 and perplexity 1."""
        inputs = signatures.text_inputs([body.text])
        outputs = await run_signature(model, signatures.SCORE.key, inputs, request, settings)
        return {
            "model": model.name,
            "version": model.version,
            **score_body(outputs, model.metadata.get("level")),
        }

    return router
