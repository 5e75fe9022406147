"""FastAPI app: text generation and scoring over the exported SavedModels.

    zoneout serve --model-base models
    ZONEOUT_MODEL_BASE=models uvicorn --factory tf_zoneout_serve.app:create_app

Endpoints: GET /health, GET /v1/models, GET /v1/models/{name}, POST /v1/models/{name}/generate,
POST /v1/models/{name}/generate_stream (server-sent events), POST /v1/models/{name}/score,
POST /v1/models/{name}/predict (any signature, tensors as JSON), POST /v1/completions (OpenAI's
completions API), POST /tokenize, POST /detokenize and GET /tokenizer_info (vLLM's), the same under
/models/{name}/ with /models/{name}/v1/completions, GET /metrics (Prometheus),
GET / (the playground). Routes live in ``serve.routes``, errors in ``serve.errors``, what routes
need in ``serve.dependencies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import time

from fastapi import Depends, FastAPI, Request

from tf_zoneout import __version__
from tf_zoneout_serve.auth import ApiKeys, require_api_key
from tf_zoneout_serve.errors import install_error_handlers, responses
from tf_zoneout_serve.limits import RequestGuard
from tf_zoneout_serve.metrics import ServiceMetrics
from tf_zoneout_serve.registry import ModelRegistry
from tf_zoneout_serve.routes import completions, generate, meta, models, predict, score, tokenizer
from tf_zoneout_serve.schemas import request_models
from tf_zoneout_serve.settings import Settings


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI):
    """Load in the background (the server answers at once; /health says 503 until loaded) and watch
    the model base for new versions."""
    registry: ModelRegistry = app.state.registry
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


def create_app(settings: Settings | None = None) -> FastAPI:
    """A new app (its own registry and metrics) for ``settings`` (default: read from the environment,
    as ``uvicorn --factory`` calls it). Importing this module builds no app."""
    settings = settings or Settings()
    metrics = ServiceMetrics()
    app = FastAPI(
        title="tf-zoneout service",
        description="Generate and score text with zoneout RNNs exported by `zoneout train`.",
        version=__version__,
        lifespan=lifespan,
    )
    app.state.settings, app.state.metrics = settings, metrics
    app.state.api_keys = ApiKeys.from_setting(
        settings.api_keys.get_secret_value() if settings.api_keys else None
    )
    app.state.registry = ModelRegistry(settings, on_batch=metrics.observe_batch)
    count_error = metrics.errors.labels  # count_error(kind).inc()
    install_error_handlers(app, lambda kind: count_error(kind).inc())
    app.add_middleware(
        RequestGuard, max_bytes=settings.max_body_bytes, on_reject=lambda k: count_error(k).inc()
    )

    @app.middleware("http")
    async def count_requests(request: Request, call_next):
        started = time.perf_counter()
        response = await call_next(request)
        endpoint = getattr(request.scope.get("route"), "path", "unmatched")
        metrics.requests.labels(endpoint, str(response.status_code)).inc()
        metrics.latency.labels(endpoint).observe(time.perf_counter() - started)
        return response

    limits = request_models(settings.max_text_chars, settings.max_new_tokens)
    model_routers = (
        models.router,
        generate.build_router(limits),
        score.build_router(limits),
        predict.router,
        completions.build_router(settings.max_text_chars, settings.max_new_tokens),
        tokenizer.build_router(settings.max_text_chars),
    )
    # With keys, the model routes (and /metrics if asked) check them, and the OpenAPI document says so.
    keyed = [Depends(require_api_key)] if app.state.api_keys.enabled else []
    app.include_router(meta.router)
    app.include_router(meta.metrics_router, dependencies=keyed if settings.metrics_need_key else [])
    for router in model_routers:
        app.include_router(router, dependencies=keyed, responses=responses(401) if keyed else None)
    return app
