"""FastAPI app: text generation and scoring over the exported SavedModels (DESIGN.md section 9).

    ZONEOUT_MODEL_BASE=models uvicorn serve.app:app      # or: zoneout serve --model-base models

Endpoints: GET /health, GET /v1/models, POST /v1/models/{name}/generate,
POST /v1/models/{name}/generate_stream (server-sent events), POST /v1/models/{name}/score,
GET /metrics (Prometheus), GET / (the playground).
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from pathlib import Path

import numpy as np
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from serve import generation
from serve.batching import OverloadedError
from serve.limits import BodySizeLimit
from serve.metrics import ServiceMetrics
from serve.registry import LoadedModel, ModelRegistry
from serve.schemas import (
    ErrorBody,
    GenerateRequest,
    GenerateResponse,
    ModelInfo,
    ModelList,
    ScoreRequest,
    ScoreResponse,
)
from serve.settings import Settings

log = logging.getLogger("zoneout.serve")
PLAYGROUND = Path(__file__).parent / "static" / "index.html"
ERROR_RESPONSES = {status: {"model": ErrorBody} for status in (400, 404, 413, 422, 503)}


class ApiError(Exception):
    def __init__(self, status: int, detail: str, kind: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers = status, detail, kind, headers or {}


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app instance (its own registry and metrics) for ``settings`` (default: environment)."""
    settings = settings or Settings()
    metrics = ServiceMetrics()
    registry = ModelRegistry(settings, on_batch=metrics.observe_batch)

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI):
        # Load in the background: the server answers at once, /health says 503 until loaded.
        loading = asyncio.create_task(registry.refresh())
        watching = asyncio.create_task(registry.watch())
        try:
            yield
        finally:
            for task in (loading, watching):
                task.cancel()
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await registry.close()

    app = FastAPI(
        title="tf-zoneout service",
        description="Generate and score text with zoneout RNNs exported by `zoneout train`.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings, app.state.registry, app.state.metrics = settings, registry, metrics
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes, on_reject=metrics.errors)

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        route = request.scope.get("route")
        endpoint = getattr(route, "path", "unmatched")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        metrics.errors.labels(error.kind).inc()
        return JSONResponse({"detail": error.detail}, status_code=error.status, headers=error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        metrics.errors.labels("invalid_request").inc()
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in error.errors()
        ]
        return JSONResponse(
            {"detail": "; ".join(problems), "errors": jsonable(error.errors())}, status_code=422
        )

    def model_or_404(name: str) -> LoadedModel:
        model = registry.get(name)
        if model is None:
            known = ", ".join(sorted(registry.models)) or "none loaded yet"
            raise ApiError(404, f"no model named {name!r} (models: {known})", "unknown_model")
        return model

    async def call(model: LoadedModel, signature: str, inputs: dict, request: Request) -> dict:
        """One row through the model's batcher; 503 on overload; gives up if the client leaves."""
        batcher = model.batchers[signature]
        task = asyncio.ensure_future(batcher.submit(inputs))
        while True:
            done, _ = await asyncio.wait({task}, timeout=0.25)
            if done:
                break
            if await request.is_disconnected():
                task.cancel()  # frees the slot: the batcher drops cancelled requests
                raise ApiError(499, "client closed the request", "client_closed")
        try:
            return task.result()
        except OverloadedError as error:
            raise ApiError(
                503,
                f"model {model.name} is overloaded ({error}); retry later",
                "overloaded",
                {"Retry-After": str(settings.retry_after_seconds)},
            ) from None

    def check_generate(model: LoadedModel, body: GenerateRequest) -> None:
        if model.kind == "classifier":
            raise ApiError(
                400, f"model {model.name} is an image classifier; it does not generate text", "wrong_kind"
            )
        if body.max_new_tokens > settings.max_new_tokens:
            raise ApiError(
                422, f"max_new_tokens: at most {settings.max_new_tokens} on this server", "invalid_request"
            )

    async def answer(model: LoadedModel, body: GenerateRequest, request: Request) -> GenerateResponse:
        problem = {"problem": np.asarray([body.prompt.encode()], object)}
        outputs = await call(model, "serving_default", problem, request)
        text = outputs["answer"][0].decode()
        return GenerateResponse(
            model=model.name,
            version=model.version,
            text=text,
            finish_reason="answer",
            num_tokens=len(text),
            seed=body.seed or 0,
        )

    @app.get("/health", responses={503: {"model": ErrorBody}})
    async def health():
        """200 once models are loaded; 503 before (or when the model base holds none)."""
        if not registry.loaded_once or not registry.models:
            state = "loading" if not registry.loaded_once else f"no models under {settings.model_base}"
            return JSONResponse({"status": state}, status_code=503)
        return {"status": "ok", "models": len(registry.models)}

    @app.get("/v1/models", response_model=ModelList)
    async def list_models():
        """Loaded models: name, version, task, vocabulary size, training metrics."""
        return {"models": [m.describe() for m in registry.models.values()]}

    @app.get("/v1/models/{name}", response_model=ModelInfo, responses={404: {"model": ErrorBody}})
    async def get_model(name: str):
        return model_or_404(name).describe()

    @app.post(
        "/v1/models/{name}/generate",
        response_model=GenerateResponse,
        responses=ERROR_RESPONSES,
    )
    async def generate(name: str, body: GenerateRequest, request: Request):
        """Continue ``prompt`` (seq2seq models: answer the problem in ``prompt``)."""
        model = model_or_404(name)
        check_generate(model, body)
        if model.kind == "seq2seq":
            return await answer(model, body, request)
        seed = body.seed if body.seed is not None else generation.new_seed()
        outputs = await call(
            model,
            "serving_default",
            generation.generate_inputs(body.prompt, body, body.max_new_tokens, seed),
            request,
        )
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

    @app.post(
        "/v1/models/{name}/generate_stream",
        responses={
            200: {"content": {"text/event-stream": {}}},
            404: {"model": ErrorBody},
            503: {"model": ErrorBody},
        },
    )
    async def generate_stream(name: str, body: GenerateRequest, request: Request):
        """The same as ``generate``, as server-sent events: ``{"text": chunk}`` per event, then an
        ``event: done`` with the totals. Chunk i is sampled with seed + i, continuing the text so far."""
        model = model_or_404(name)
        check_generate(model, body)
        seed = body.seed if body.seed is not None else generation.new_seed()
        if model.kind == "seq2seq":
            first = await answer(model, body, request)
        else:
            # The first chunk runs before the response starts, so overload is still a clean 503.
            size = min(settings.stream_chunk_tokens, body.max_new_tokens)
            first = await call(
                model, "serving_default", generation.generate_inputs(body.prompt, body, size, seed), request
            )

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
                    outputs = await call(model, "serving_default", inputs, request)
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

    @app.post(
        "/v1/models/{name}/score",
        response_model=ScoreResponse,
        responses=ERROR_RESPONSES,
    )
    async def score(name: str, body: ScoreRequest, request: Request):
        """Bits per token (per character for char models), perplexity and per-token surprisal."""
        model = model_or_404(name)
        if "score" not in model.backend.signatures:
            raise ApiError(400, f"model {model.name} ({model.kind}) does not score text", "wrong_kind")
        if len(body.text) > settings.max_text_chars:
            raise ApiError(
                422, f"text: at most {settings.max_text_chars} characters on this server", "invalid_request"
            )
        outputs = await call(model, "score", {"text": np.asarray([body.text.encode()], object)}, request)
        return {
            "model": model.name,
            "version": model.version,
            **generation.score_body(outputs, model.metadata.get("level")),
        }

    @app.get("/metrics")
    async def prometheus():
        return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)

    @app.get("/", response_class=HTMLResponse, include_in_schema=False)
    async def playground():
        return HTMLResponse(PLAYGROUND.read_text())

    return app


def sse(data: dict, event: str | None = None) -> str:
    """One server-sent event."""
    head = f"event: {event}\n" if event else ""
    return f"{head}data: {json.dumps(data)}\n\n"


def jsonable(errors: list) -> list:
    """Validation errors without the non-JSON parts pydantic may include (exceptions in ctx)."""
    return [{k: (str(v) if k == "ctx" else v) for k, v in e.items() if k != "url"} for e in errors]


app = create_app()
