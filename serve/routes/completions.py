"""POST /v1/completions: OpenAI's completions API, as vLLM implements it, for the language models.

Errors answer in OpenAI's envelope (``{"error": {"message", "type", "param", "code"}}``) with the
statuses the openai SDK maps to its exceptions: 400 BadRequestError (also for a body that breaks
the schema, as OpenAI answers), 404 NotFoundError, 503 InternalServerError (overload; the SDK
retries). With ``stream``, each choice is sent piece by piece as server-sent events while it is
generated (``stream``), then ``data: [DONE]``.
"""

# No `from __future__ import annotations`: the body type is a local name FastAPI must resolve.
import asyncio
import json
import secrets
import time
from types import SimpleNamespace

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tf_zoneout import signatures
from tf_zoneout_serve import completions, errors, generation
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
        call = ModelCall(model, sampling, request, settings)
        if body.stream:
            return await stream(call, body, prompts, stop, base_seed, metrics)

        async def generate(prompt: str, seed: int):
            return await call.generate(prompt, body.max_tokens, seed) if body.max_tokens else None

        scored = await asyncio.gather(*(call.score(p) for p in prompts))
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
            **envelope_of(model),
            "choices": choices,
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        return response

    return router


def envelope_of(model) -> dict:
    """A completion's id, object, creation time and model (every streamed event repeats them)."""
    return {
        "id": f"cmpl-{secrets.token_hex(12)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model.name,
    }


class ModelCall:
    """A language model's two signatures for one request: ``generate(prompt, tokens, seed)`` and
    ``score(text)``, each one row through the model's batcher."""

    def __init__(self, model, sampling, request: Request, settings):
        self.model, self.sampling, self.request, self.settings = model, sampling, request, settings

    async def generate(self, prompt: str, tokens: int, seed: int) -> dict:
        inputs = generation.generate_inputs(prompt, self.sampling, tokens, seed)
        return await run_signature(self.model, signatures.GENERATE.key, inputs, self.request, self.settings)

    async def score(self, text: str) -> dict:
        inputs = generation.score_inputs(text)
        return await run_signature(self.model, signatures.SCORE.key, inputs, self.request, self.settings)


async def stream(call: ModelCall, body, prompts: list[str], stop: list[str], base_seed: int, metrics):
    """Server-sent events of every choice, piece by piece as the model generates it (each piece one
    model call of ``stream_chunk_tokens`` tokens continuing the text so far; piece k > 0 is sampled
    with ``completions.chunk_seed``), choice after choice, then ``data: [DONE]``. With ``echo`` a
    choice's first event is its prompt (with its log-probabilities). The first model call runs before
    the response starts, so an overloaded model still answers a clean 503; a later failure ends the
    stream with an event in OpenAI's error envelope."""
    chunk_tokens = call.settings.stream_chunk_tokens
    scored = await asyncio.gather(*(call.score(p) for p in prompts)) if body.echo else None
    rows = [(p, i) for p in range(len(prompts)) for i in range(body.n)]
    first = (
        await call.generate(prompts[0], min(chunk_tokens, body.max_tokens), base_seed)
        if body.max_tokens
        else None
    )
    envelope = envelope_of(call.model)

    def event(delta: dict) -> str:
        return f"data: {json.dumps({**envelope, 'choices': [delta]})}\n\n"

    async def events():
        generated = 0
        try:
            for index, (p, i) in enumerate(rows):
                head = prompts[p] if body.echo else ""
                seed = base_seed + p * body.n + i
                if body.echo:
                    pieces = completions.score_pieces(scored[p])
                    echoed = completions.logprob_fields(head, [(pieces, 0)], body.logprobs or 0)
                    lp = echoed if body.logprobs is not None else None
                    yield event({"text": head, "index": index, "logprobs": lp, "finish_reason": None})
                text, produced, chunk, stopped = "", 0, 0, False
                while produced < body.max_tokens and not stopped:
                    size = min(chunk_tokens, body.max_tokens - produced)
                    if index == 0 and chunk == 0:
                        outputs = first
                    else:
                        outputs = await call.generate(
                            prompts[p] + text, size, completions.chunk_seed(seed, chunk)
                        )
                    delta, text, count, stopped = completions.streamed_piece(
                        index, head, text, outputs, stop, body.logprobs
                    )
                    made = int(outputs["num_tokens"][0])
                    produced += made if made else body.max_tokens  # nothing more to come: the end
                    generated += count
                    chunk += 1
                    if produced >= body.max_tokens or stopped:
                        delta["finish_reason"] = "stop" if stopped else "length"
                    if delta["text"] or delta["finish_reason"]:
                        yield event(delta)
                if not body.max_tokens:
                    yield event({"text": "", "index": index, "logprobs": None, "finish_reason": "length"})
        except ApiError as error:
            body_ = errors.openai_error_body(error.status, error.detail, error.param, error.kind)
            yield f"data: {json.dumps(body_)}\n\n"
            return
        finally:
            metrics.tokens_generated.labels(call.model.name).inc(generated)
        yield "data: [DONE]\n\n"

    return StreamingResponse(events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"})
