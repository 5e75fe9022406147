"""Health, Prometheus metrics and the playground page."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter
from fastapi.responses import HTMLResponse, JSONResponse, Response
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from pydantic import BaseModel

from tf_zoneout_serve.dependencies import MetricsDep, RegistryDep, SettingsDep

PLAYGROUND = Path(__file__).resolve().parent.parent / "static" / "index.html"
router = APIRouter()


class Health(BaseModel):
    status: str
    models: int = 0


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"model": Health, "description": "models are loading, or the model base holds none"}},
)
async def health(registry: RegistryDep, settings: SettingsDep):
    """200 once models are loaded; 503 before (or when the model base holds none)."""
    if not registry.loaded_once or not registry.models:
        state = "loading" if not registry.loaded_once else f"no models under {settings.model_base}"
        return JSONResponse({"status": state, "models": 0}, status_code=503)
    return {"status": "ok", "models": len(registry.models)}


metrics_router = APIRouter()  # included with the key check when ZONEOUT_METRICS_NEED_KEY is on


@metrics_router.get(
    "/metrics",
    response_class=Response,
    responses={200: {"content": {"text/plain": {"schema": {"type": "string"}}}, "description": "Prometheus"}},
)
async def prometheus(metrics: MetricsDep):
    """Prometheus text exposition format."""
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)


@router.get("/", response_class=HTMLResponse, include_in_schema=False)
async def playground():
    return HTMLResponse(PLAYGROUND.read_text())
