"""FastAPI dependencies: what a route needs, read from ``app.state`` (set by ``create_app``)."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from tf_zoneout_serve.errors import unknown_model
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
