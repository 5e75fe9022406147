"""POST /v1/completions: OpenAI's completions API, as vLLM implements it, for the language models.

Errors answer in OpenAI's envelope (``{"error": {"message", "type", "param", "code"}}``) with the
statuses the openai SDK maps to its exceptions: 400 BadRequestError (also for a body that breaks
the schema, as OpenAI answers), 404 NotFoundError, 503 InternalServerError (overload; the SDK
retries). With ``stream``, each choice is sent as one server-sent event once it is generated (the
model generates a completion in one call), then ``data: [DONE]``.
"""

# No `from __future__ import annotations`: the body type is a local name FastAPI must resolve.
import asyncio
import json
import secrets
import time
from types import SimpleNamespace

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tf_zoneout_serve import completions, generation
from tf_zoneout_serve.dependencies import MetricsDep, RegistryDep, SettingsDep
from tf_zoneout_serve.errors import ApiError, responses
from tf_zoneout_serve.model_calls import run_signature
from tf_zoneout_serve.operations import Operation, require
from tf_zoneout_serve.schemas import CompletionResponse, completion_request_model


def _model_for(registry, body):
    model = registry.get(body.model)
    if model is None:
        known = ", ".join(sorted(registry.models)) or "none loaded yet"
        raise ApiError(
            404, f"no model named {body.model!r} (models: {known})", "model_not_found", param="model"
        )
    require(model.name, model.kind, Operation.COMPLETIONS, param="model")
    return model


def build_router(max_text_chars: int, max_new_tokens: int) -> APIRouter:
    """The completions route for this server's request limits."""
    router = APIRouter()
    request_model = completion_request_model(max_text_chars, max_new_tokens)

    @router.post(
        "/v1/completions",
        response_model=CompletionResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "with stream: server-sent events"},
            **responses(400, 404, 413, 415, 503, openai=True),
        },
    )
    async def complete(
        body: request_model,
        request: Request,
        registry: RegistryDep,
        settings: SettingsDep,
        metrics: MetricsDep,
    ):
        """Continue each prompt ``n`` times. ``echo`` prepends the prompt; ``max_tokens`` 0 generates
        nothing (an empty completion), and with ``echo`` and ``logprobs`` scores the prompt (the same
        log-probabilities as ``/score``). Choice i of prompt p is sampled with seed + p * n + i;
        log-probabilities are the model's, in nats. A model that is not a language model answers 404."""
        model = _model_for(registry, body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        base_seed = body.seed if body.seed is not None else generation.new_seed()
        sampling = SimpleNamespace(temperature=body.temperature, top_k=max(body.top_k, 0), top_p=body.top_p)

        async def generate(prompt: str, seed: int):
            if body.max_tokens == 0:
                return None
            inputs = generation.generate_inputs(prompt, sampling, body.max_tokens, seed)
            return await run_signature(model, "serving_default", inputs, request, settings)

        async def score(prompt: str):
            inputs = {"text": np.asarray([prompt.encode()], object)}
            return await run_signature(model, "score", inputs, request, settings)

        scored = await asyncio.gather(*(score(p) for p in prompts))
        rows = [(p, i) for p in range(len(prompts)) for i in range(body.n)]
        generated = await asyncio.gather(*(generate(prompts[p], base_seed + p * body.n + i) for p, i in rows))
        choices, completion_tokens = [], 0
        for index, ((p, _), outputs) in enumerate(zip(rows, generated)):
            prompt_pieces = completions.score_pieces(scored[p]) if body.echo else None
            made, count = completions.choice(index, prompts[p], outputs, prompt_pieces, stop, body.logprobs)
            choices.append(made)
            completion_tokens += count
        metrics.tokens_generated.labels(model.name).inc(completion_tokens)
        prompt_tokens = sum(int(s["num_tokens"][0]) for s in scored) * body.n
        response = {
            "id": f"cmpl-{secrets.token_hex(12)}",
            "object": "text_completion",
            "created": int(time.time()),
            "model": model.name,
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        if not body.stream:
            return response

        async def events():
            for made in choices:
                chunk = {**response, "choices": [made], "usage": None}
                yield f"data: {json.dumps(chunk)}\n\n"
            yield "data: [DONE]\n\n"

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router
