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
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tf_zoneout import signatures
from tf_zoneout_serve import completions, errors
from tf_zoneout_serve.dependencies import MetricsDep, RegistryDep, SettingsDep
from tf_zoneout_serve.engine import (
    Generation,
    Piece,
    Sampling,
    Tokens,
    new_seed,
    run_signature,
    score_tokens,
)
from tf_zoneout_serve.errors import ApiError, responses, unknown_model
from tf_zoneout_serve.operations import Operation, require
from tf_zoneout_serve.schemas import CompletionResponse, completion_request_model


def _model_for(registry, body):
    model = registry.get(body.model)
    if model is None:
        raise unknown_model(body.model, registry.models)
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
        log-probabilities as ``/score``). Choice i of every prompt is sampled with seed + i (as vLLM:
        each prompt a request of its own), streamed or not (a stream gives the same text);
        log-probabilities are the model's, in nats. A model that is not a language model answers 404."""
        model = _model_for(registry, body)
        prompts = [body.prompt] if isinstance(body.prompt, str) else body.prompt
        stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
        base_seed = body.seed if body.seed is not None else new_seed()
        sampling = Sampling(body.temperature, max(body.top_k, 0), body.top_p)
        chunk_tokens = settings.stream_chunk_tokens if body.stream else None
        generations = [
            Generation(
                model,
                request,
                settings,
                prompts[p],
                sampling,
                body.max_tokens,
                seed,
                stop,
                chunk_tokens,
                alternatives=bool(body.logprobs),
            )
            for p in range(len(prompts))
            for seed in range(base_seed, base_seed + body.n)
        ]
        scored = None
        if body.echo or not body.max_tokens:  # the prompts' tokens (echo) or their count (usage)
            scored = await asyncio.gather(
                *(
                    run_signature(
                        model, signatures.SCORE.key, signatures.score_inputs([p]), request, settings
                    )
                    for p in prompts
                )
            )
        echoes = [(p, score_tokens(s, p)) for p, s in zip(prompts, scored)] if body.echo else None
        if body.stream:
            await generations[0].first_call()  # before the response starts: overload is still a clean 503
            events = stream_events(generations, body, echoes, envelope_of(model), metrics, scored)
            return StreamingResponse(
                events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
            )
        pieces = await asyncio.gather(*(g.run() for g in generations))
        choices = []
        for index, piece in enumerate(pieces):
            echo = echoes[index // body.n] if echoes else None
            start = len(echo[0]) if echo else 0
            choices.append(completions.choice(index, piece, body.logprobs, echo, start))
        completion_tokens = sum(g.num_tokens for g in generations)
        metrics.tokens_generated.labels(model.name).inc(completion_tokens)
        return {**envelope_of(model), "choices": choices, "usage": usage_of(generations, scored, body.n)}

    return router


def usage_of(generations: list[Generation], scored, n: int) -> dict:
    """OpenAI's usage: prompt tokens (from ``score`` where the prompts were scored, else from the
    generations' first calls) and the completions' tokens."""
    completion_tokens = sum(g.num_tokens for g in generations)
    if scored is not None:
        prompt_tokens = sum(int(s["num_tokens"][0]) for s in scored) * n
    else:
        prompt_tokens = sum(g.prompt_tokens for g in generations)
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    }


def envelope_of(model) -> dict:
    """A completion's id, object, creation time and model (every streamed event repeats them)."""
    return {
        "id": f"cmpl-{secrets.token_hex(12)}",
        "object": "text_completion",
        "created": int(time.time()),
        "model": model.name,
    }


async def stream_events(
    generations: list[Generation], body, echoes, envelope: dict, metrics, scored
) -> AsyncIterator[str]:
    """Server-sent events of every choice, choice after choice, a piece per model call (each
    continuing from the RNN state the last one left), then ``data: [DONE]``. With ``echo`` a choice's
    first event is its prompt (with its log-probabilities); with ``stream_options.include_usage`` a last
    event carries the usage and no choice. A failure ends the stream with an event in OpenAI's error
    envelope."""

    def event(choice: dict) -> str:
        return f"data: {json.dumps({**envelope, 'choices': [choice]})}\n\n"

    try:
        for index, generation in enumerate(generations):
            echo = echoes[index // body.n] if echoes else None
            if echo:
                yield event(completions.choice(index, Piece("", Tokens()), body.logprobs, echo))
            start = len(echo[0]) if echo else 0
            async for piece in generation.pieces():
                if piece.text or piece.finish_reason:
                    yield event(completions.choice(index, piece, body.logprobs, completion_start=start))
    except ApiError as error:
        error_body = errors.openai_error_body(error.status, error.detail, error.param, error.kind)
        yield f"data: {json.dumps(error_body)}\n\n"
        return
    finally:
        metrics.tokens_generated.labels(envelope["model"]).inc(sum(g.num_tokens for g in generations))
    if body.stream_options is not None and body.stream_options.include_usage:
        usage = usage_of(generations, scored, body.n)
        yield f"data: {json.dumps({**envelope, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"
