"""POST /v1/models/{name}/generate and /generate_stream (server-sent events)."""

# No `from __future__ import annotations`: the body types are local names FastAPI must resolve.
import json

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from tf_zoneout import signatures
from tf_zoneout.model_base import ModelKind
from tf_zoneout_serve import generation
from tf_zoneout_serve.dependencies import MetricsDep, SettingsDep, model_offering
from tf_zoneout_serve.errors import ApiError, ErrorBody, responses
from tf_zoneout_serve.model_calls import run_signature
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
        seed = body.seed if body.seed is not None else generation.new_seed()
        inputs = generation.generate_inputs(body.prompt, body, body.max_new_tokens, seed)
        outputs = await run_signature(model, signatures.GENERATE.key, inputs, request, settings)
        text, stopped = generation.cut_at_stop(outputs["text"][0].decode("utf-8", "replace"), body.stop)
        count = (
            generation.count_tokens(text, model.metadata.get("level"))
            if stopped
            else int(outputs["num_tokens"][0])
        )
        metrics.tokens_generated.labels(model.name).inc(count)
        return GenerateResponse(
            model=model.name,
            version=model.version,
            text=text,
            finish_reason="stop" if stopped else "length",
            num_tokens=count,
            logprob=None if stopped else float(outputs["logprob"][0]),
            seed=seed,
            num_unknown=int(outputs["num_unknown"][0]),
        )

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
        """The same as ``generate``, as server-sent events: ``{"text": chunk}`` per event, then an
        ``event: done`` with the totals. Chunk i is sampled with seed + i, continuing the text so far."""
        seed = body.seed if body.seed is not None else generation.new_seed()
        if model.kind == ModelKind.SEQ2SEQ:
            first = await answer(model, body, request, settings)
        else:
            # The first chunk runs before the response starts, so overload is still a clean 503.
            size = min(settings.stream_chunk_tokens, body.max_new_tokens)
            inputs = generation.generate_inputs(body.prompt, body, size, seed)
            first = await run_signature(model, signatures.GENERATE.key, inputs, request, settings)

        async def events():
            if isinstance(first, GenerateResponse):
                yield sse({"text": first.text})
                yield sse(first.model_dump(), event="done")
                return
            level = model.metadata.get("level")
            text, produced, chunk_index, outputs = "", 0, 0, first
            while True:
                chunk = outputs["text"][0].decode("utf-8", "replace")
                produced += int(outputs["num_tokens"][0])
                kept, stopped = generation.cut_at_stop(text + chunk, body.stop)
                new_text, text = kept[len(text) :], kept
                if new_text:
                    yield sse({"text": new_text})
                if stopped or produced >= body.max_new_tokens:
                    break
                chunk_index += 1
                size = min(settings.stream_chunk_tokens, body.max_new_tokens - produced)
                inputs = generation.generate_inputs(body.prompt + text, body, size, seed + chunk_index)
                try:
                    outputs = await run_signature(model, signatures.GENERATE.key, inputs, request, settings)
                except ApiError as error:
                    yield sse({"detail": error.detail}, event="error")
                    return
            count = generation.count_tokens(text, level) if stopped else produced
            metrics.tokens_generated.labels(model.name).inc(count)
            totals = {
                "model": model.name,
                "version": model.version,
                "text": text,
                "num_tokens": count,
                "finish_reason": "stop" if stopped else "length",
                "seed": seed,
            }
            yield sse(totals, event="done")

        return StreamingResponse(
            events(), media_type="text/event-stream", headers={"Cache-Control": "no-cache"}
        )

    return router
