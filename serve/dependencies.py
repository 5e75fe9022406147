"""FastAPI dependencies: what a route needs, read from ``app.state`` (set by ``create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tf_zoneout.saved_model.model_base import ModelKind
from tf_zoneout_serve.errors import ApiError, unknown_model
from tf_zoneout_serve.metrics import ServiceMetrics
from tf_zoneout_serve.operations import Operation, require
from tf_zoneout_serve.registry import LoadedModel, ModelRegistry
from tf_zoneout_serve.settings import Settings


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


def get_registry(request: Request) -> ModelRegistry:
    return request.app.state.registry


def get_metrics(request: Request) -> ServiceMetrics:
    return request.app.state.metrics


SettingsDep = Annotated[Settings, Depends(get_settings)]
RegistryDep = Annotated[ModelRegistry, Depends(get_registry)]
MetricsDep = Annotated[ServiceMetrics, Depends(get_metrics)]


def get_model(name: str, registry: RegistryDep) -> LoadedModel:
    """The loaded model named in the path (its newest version); 404 otherwise."""
    model = registry.get(name)
    if model is None:
        raise unknown_model(name, registry.models)
    return model


ModelDep = Annotated[LoadedModel, Depends(get_model)]


def model_offering(operation: Operation):
    """A dependency type: the loaded model named in the path, which must offer ``operation`` (404
    otherwise, naming what it does offer)."""

    def get(model: ModelDep) -> LoadedModel:
        require(model.name, model.kind, operation)
        return model

    return Annotated[LoadedModel, Depends(get)]


def named_model(
    registry: ModelRegistry, operation: Operation, named: str | None, path_name: str | None = None
) -> LoadedModel:
    """The model an OpenAI- or vLLM-style request means: the one in its path (``/models/{name}/...``),
    else the one its ``model`` field names, else the only language model served.

    Raises:
        ApiError: 404 for an unknown name or a model without ``operation``; 400 when the path and the
            body name different models, or several language models are served and none is named.
    """
    if path_name is not None and named is not None and named != path_name:
        raise ApiError(
            400,
            f"this path serves model {path_name!r}; the body names {named!r}",
            "model_mismatch",
            param="model",
        )
    name = path_name or named
    if name is None:
        served = sorted(m.name for m in registry.models.values() if m.kind == ModelKind.LANGUAGE_MODEL)
        if len(served) != 1:
            raise ApiError(
                400 if served else 404,
                f"{len(served)} language models are served ({', '.join(served) or 'none loaded yet'}): name "
                "one in `model`, or use its own base path /models/NAME/ (e.g. /models/NAME/tokenize)",
                "model_required",
                param="model",
            )
        name = served[0]
    model = registry.get(name)
    if model is None:
        raise unknown_model(name, registry.models)
    require(model.name, model.kind, operation, param="model")
    return model
