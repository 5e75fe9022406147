"""POST /v1/models/{name}/generate and /generate_stream (server-sent events)."""

# No `from __future__ import annotations`: the body types are local names FastAPI must resolve.
import json
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tf_zoneout.saved_model import signatures
from tf_zoneout.saved_model.model_base import ModelKind
from tf_zoneout_serve.dependencies import MetricsDep, SettingsDep, model_offering
from tf_zoneout_serve.engine import Generation, Prompt, Sampling, new_seed, run_signature
from tf_zoneout_serve.errors import ApiError, ErrorBody, responses
from tf_zoneout_serve.operations import Operation
from tf_zoneout_serve.registry import LoadedModel
from tf_zoneout_serve.schemas import GenerateRequest, GenerateResponse, RequestModels, StreamChunk
from tf_zoneout_serve.settings import Settings

GeneratingModel = model_offering(Operation.GENERATE)
StreamingModel = model_offering(Operation.GENERATE_STREAM)

# One server-sent event: no event name and a chunk as data; ``event: done`` and the totals; or
# ``event: error`` and the error. The data is JSON text.
STREAM_EVENT_SCHEMA = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "event": {"type": "string", "enum": ["message", "done", "error"]},  # "message": a chunk
        "data": {
            "type": "string",
            "contentMediaType": "application/json",
            "contentSchema": {
                "anyOf": [
                    m.model_json_schema(mode="serialization")
                    for m in (StreamChunk, GenerateResponse, ErrorBody)
                ]
            },
        },
    },
}
STREAM_DESCRIPTION = (
    'Server-sent events: `data: {"text": chunk}` per chunk, then `event: done` with the totals '
    '(the generate response\'s fields), or `event: error` with `{"detail": ...}` if a later chunk fails.'
)


async def answer(
    model: LoadedModel, body: GenerateRequest, request: Request, settings: Settings
) -> GenerateResponse:
    """A seq2seq model's answer to the problem in ``body.prompt``."""
    problem = signatures.answer_inputs([body.prompt])
    outputs = await run_signature(model, signatures.ANSWER.key, problem, request, settings)
    text = outputs["answer"][0].decode()
    return GenerateResponse(
        model=model.name,
        version=model.version,
        text=text,
        finish_reason="answer",
        num_tokens=len(text),
        seed=body.seed or 0,
    )


def sse(data: dict, event: str | None = None) -> str:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def generation_of(model, body, request: Request, settings: Settings, chunk_tokens=None) -> Generation:
    """The engine's generation for a generate request (its seed, or a new one)."""
    seed = body.seed if body.seed is not None else new_seed()
    sampling = Sampling(body.temperature, body.top_k, body.top_p)
    prompt = Prompt(text=body.prompt)
    return Generation(
        model, request, settings, prompt, sampling, body.max_new_tokens, seed, body.stop, chunk_tokens
    )


def response_of(generation: Generation) -> GenerateResponse:
    """The generate response of a finished generation (no total logprob when a stop cut it)."""
    stopped = generation.finish_reason == "stop"
    return GenerateResponse(
        model=generation.model.name,
        version=generation.model.version,
        text=generation.text,
        finish_reason=generation.finish_reason,
        num_tokens=generation.num_tokens,
        logprob=None if stopped else generation.logprob,
        seed=generation.seed,
        num_unknown=generation.num_unknown,
    )


async def stream_events(generation: Generation, metrics) -> AsyncIterator[str]:
    """The generate stream's events: ``{"text": piece}`` per model call, then ``event: done`` with the
    totals, or ``event: error`` if a later call fails."""
    try:
        async for piece in generation.pieces():
            if piece.text:
                yield sse({"text": piece.text})
    except ApiError as error:
        yield sse({"detail": error.detail}, event="error")
        return
    finally:
        metrics.tokens_generated.labels(generation.model.name).inc(generation.num_tokens)
    yield sse(response_of(generation).model_dump(exclude={"logprob", "num_unknown"}), event="done")


async def answer_events(first: GenerateResponse) -> AsyncIterator[str]:
    yield sse({"text": first.text})
    yield sse(first.model_dump(), event="done")


def build_router(models: RequestModels) -> APIRouter:
    """The generation routes for this server's request limits."""
    router = APIRouter()
    generate_request = models.generate

    @router.post(
        "/v1/models/{name}/generate",
        response_model=GenerateResponse,
        responses=responses(404, 413, 415, 422, 503),
    )
    async def generate(
        model: GeneratingModel,
        body: generate_request,
        request: Request,
        settings: SettingsDep,
        metrics: MetricsDep,
    ):
        """Continue ``prompt`` (seq2seq models: answer the problem in ``prompt``). An empty prompt, or one
        with no known token, continues from the start of a text."""
        if model.kind == ModelKind.SEQ2SEQ:
            return await answer(model, body, request, settings)
        generation = generation_of(model, body, request, settings)
        await generation.run()
        metrics.tokens_generated.labels(model.name).inc(generation.num_tokens)
        return response_of(generation)

    @router.post(
        "/v1/models/{name}/generate_stream",
        response_class=StreamingResponse,
        responses={
            200: {
                "content": {"text/event-stream": {"schema": STREAM_EVENT_SCHEMA}},
                "description": STREAM_DESCRIPTION,
            },
            **responses(404, 413, 415, 422, 503),
        },
    )
    async def generate_stream(
        model: StreamingModel,
        body: generate_request,
        request: Request,
        settings: SettingsDep,
        metrics: MetricsDep,
    ):
        """The same as ``generate``, as server-sent events: ``{"text": piece}`` per model call of
        ``stream_chunk_tokens`` tokens, each continuing from the RNN state the last one left, then an
        ``event: done`` with the totals. The text is the non-streamed ``generate``'s for the same seed."""
        if model.kind == ModelKind.SEQ2SEQ:
            events = answer_events(await answer(model, body, request, settings))
        else:
            generation = generation_of(model, body, request, settings, settings.stream_chunk_tokens)
            await generation.first_call()  # before the response starts: overload is still a clean 503
            events = stream_events(generation, metrics)
        return StreamingResponse(
            events, media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router
