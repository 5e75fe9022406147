"""POST /v1/completions: OpenAI's completions API, as vLLM implements it, for the language models.

Errors answer in OpenAI's envelope (``{"error": {"message", "type", "param", "code"}}``) with the
statuses the openai SDK maps to its exceptions: 400 BadRequestError (also for a body that breaks
the schema, as OpenAI answers), 404 NotFoundError, 503 InternalServerError (overload; the SDK
retries). With ``stream``, each choice is sent piece by piece as server-sent events while it is
generated (``stream``), then ``data: [DONE]``.
"""

# No `from __future__ import annotations`: the body type is a local name FastAPI must resolve.
import asyncio
import dataclasses
import json
import secrets
import time
from collections.abc import AsyncIterator

import numpy as np
from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tf_zoneout.saved_model import signatures
from tf_zoneout_serve import completions, errors
from tf_zoneout_serve.dependencies import MetricsDep, RegistryDep, SettingsDep, named_model
from tf_zoneout_serve.engine import (
    Generation,
    Piece,
    Prompt,
    Sampling,
    Tokens,
    new_seed,
    read_ids,
    read_tokens,
    run_signature,
    score_tokens,
)
from tf_zoneout_serve.errors import ApiError, responses
from tf_zoneout_serve.operations import Operation
from tf_zoneout_serve.routes.tokenizer import MODEL_BASE_PATH
from tf_zoneout_serve.schemas import CompletionResponse, completion_request_model


@dataclasses.dataclass
class PreparedPrompt:
    """One prompt of a request, ready to continue: what the generations start from, the echo (its
    text and tokens) when asked, and its token count when known before generating."""

    prompt: Prompt
    echo: tuple[str, Tokens] | None = None
    num_tokens: int | None = None


async def prepare(model, prompt: str | list[int], body, request: Request, settings) -> PreparedPrompt:
    """Token ids are read (``read``: the state to continue from, and the echo, whose first token has no
    log-probability); a text is scored (``score``) only for ``echo`` or when nothing is generated."""
    if isinstance(prompt, list):
        outputs = await read_ids(model, prompt, request, settings)
        state = Prompt(state=outputs["state"][:1], num_tokens=len(prompt))
        return PreparedPrompt(state, read_tokens(outputs, len(prompt)) if body.echo else None, len(prompt))
    if body.max_tokens and not body.echo:  # nothing to score: generation counts the prompt
        return PreparedPrompt(Prompt(text=prompt))
    scored = await run_signature(
        model, signatures.SCORE.key, signatures.text_inputs([prompt]), request, settings
    )
    echo = (prompt, score_tokens(scored, prompt)) if body.echo else None
    return PreparedPrompt(Prompt(text=prompt), echo, int(scored["num_tokens"][0]))


def logit_bias_row(model, logit_bias: dict[str, float] | None):
    """``logit_bias`` ({token id: bias}) as a [V] row, or None; 400 naming an id outside the vocabulary."""
    if not logit_bias:
        return None
    vocab_size = int(model.metadata["vocab_size"])
    row = np.zeros([vocab_size], np.float32)
    for key, bias in logit_bias.items():
        if int(key) >= vocab_size:
            raise ApiError(
                400,
                f"logit_bias names token id {key}, outside model {model.name}'s vocabulary "
                f"(0 to {vocab_size - 1})",
                "invalid_token_id",
                param="logit_bias",
            )
        row[int(key)] = bias
    return row


def best_first(generations: list[Generation], n: int) -> list[Generation]:
    """The ``n`` generations with the highest log-probability per token, best first (OpenAI's
    ``best_of``); all of them, in their order, when there are ``n``."""
    if len(generations) == n:
        return generations
    return sorted(generations, key=lambda g: g.score, reverse=True)[:n]


def build_router(max_text_chars: int, max_new_tokens: int) -> APIRouter:
    """The completions routes (``/v1/completions`` and each model's own) for this server's limits."""
    router = APIRouter()
    request_model = completion_request_model(max_text_chars, max_new_tokens)
    documented = dict(
        response_model=CompletionResponse,
        responses={
            200: {"content": {"text/event-stream": {}}, "description": "with stream: server-sent events"},
            **responses(400, 404, 413, 415, 503, openai=True),
        },
    )

    @router.post("/v1/completions", **documented)
    async def complete(
        body: request_model,
        request: Request,
        registry: RegistryDep,
        settings: SettingsDep,
        metrics: MetricsDep,
    ):
        """Continue each prompt ``n`` times (the best ``n`` of ``best_of``). A prompt is a text, or token
        ids (``POST /tokenize``) read as given. ``echo`` prepends the prompt; ``max_tokens`` 0
        generates nothing (an empty completion), and with ``echo`` and ``logprobs`` scores the prompt
        (a text gets the log-probabilities of ``/score``; token ids get one per id, the first
        ``null``). Choice i of every prompt is sampled with seed + i (as vLLM: each prompt a request
        of its own), streamed or not (a stream gives the same text); log-probabilities are the
        model's, in nats. A model that is not a language model answers 404."""
        model = named_model(registry, Operation.COMPLETIONS, body.model)
        return await completion(model, body, request, settings, metrics)

    @router.post(MODEL_BASE_PATH + "/v1/completions", **documented)
    async def complete_for(
        name: str,
        body: request_model,
        request: Request,
        registry: RegistryDep,
        settings: SettingsDep,
        metrics: MetricsDep,
    ):
        """``/v1/completions`` for model ``name`` (the body's ``model`` must be the same): the base URL
        that finds this model's tokenizer at ``/models/{name}/tokenize``."""
        model = named_model(registry, Operation.COMPLETIONS, body.model, name)
        return await completion(model, body, request, settings, metrics)

    return router


async def completion(model, body, request: Request, settings, metrics):
    """The completion (or its event stream) of ``body`` by ``model``."""
    prompts = (
        [body.prompt] if isinstance(body.prompt, str) or isinstance(body.prompt[0], int) else body.prompt
    )
    stop = [body.stop] if isinstance(body.stop, str) else list(body.stop or [])
    base_seed = body.seed if body.seed is not None else new_seed()
    sampling = Sampling(
        body.temperature, max(body.top_k, 0), body.top_p, body.frequency_penalty, body.presence_penalty,
        logit_bias_row(model, body.logit_bias),
    )  # fmt: skip
    chunk_tokens = settings.stream_chunk_tokens if body.stream else None
    prepared = await asyncio.gather(*(prepare(model, p, body, request, settings) for p in prompts))
    made = body.best_of or body.n
    groups = [
        [
            Generation(
                model,
                request,
                settings,
                ready.prompt,
                sampling,
                body.max_tokens,
                seed,
                stop,
                chunk_tokens,
                alternatives=bool(body.logprobs),
            )
            for seed in range(base_seed, base_seed + made)
        ]
        for ready in prepared
    ]
    generations = [g for group in groups for g in group]
    echoes = [ready.echo for ready in prepared] if body.echo else None
    if body.stream:
        await generations[0].first_call()  # before the response starts: overload is still a clean 503
        events = stream_events(generations, body, echoes, envelope_of(model), metrics, prepared)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )
    pieces = dict(zip(generations, await asyncio.gather(*(g.run() for g in generations))))
    metrics.tokens_generated.labels(model.name).inc(sum(g.made for g in generations))
    choices = []
    for index, generation in enumerate(g for group in groups for g in best_first(group, body.n)):
        echo = echoes[index // body.n] if echoes else None
        start = len(echo[0]) if echo else 0
        choices.append(completions.choice(index, pieces[generation], body.logprobs, echo, start))
    return {**envelope_of(model), "choices": choices, "usage": usage_of(generations, prepared, body.n)}


def usage_of(generations: list[Generation], prepared, n: int) -> dict:
    """OpenAI's usage: prompt tokens (once per choice: read or scored, else counted by the first
    generation of each prompt) and the completion tokens of every generation made (with ``best_of``,
    of those not chosen too)."""
    completion_tokens = sum(g.num_tokens for g in generations)
    made = len(generations) // len(prepared)
    first_of_each = generations[::made]
    prompt_tokens = n * sum(
        ready.num_tokens if ready.num_tokens is not None else g.prompt_tokens
        for ready, g in zip(prepared, first_of_each)
    )
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
    generations: list[Generation], body, echoes, envelope: dict, metrics, prepared
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
        usage = usage_of(generations, prepared, body.n)
        yield f"data: {json.dumps({**envelope, 'choices': [], 'usage': usage})}\n\n"
    yield "data: [DONE]\n\n"
