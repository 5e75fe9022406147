"""The loaded models and their metadata."""

from __future__ import annotations

from fastapi import APIRouter

from tf_zoneout_serve.dependencies import ModelDep, RegistryDep
from tf_zoneout_serve.errors import responses
from tf_zoneout_serve.schemas import ModelInfo, ModelList

router = APIRouter()


@router.get("/v1/models", response_model=ModelList)
async def list_models(registry: RegistryDep):
    """Loaded models: name, version, task, vocabulary size, training metrics; ``data`` lists them in
    OpenAI's shape (what ``client.models.list()`` of the openai SDK reads)."""
    models = list(registry.models.values())
    return {
        "models": [m.describe() for m in models],
        "object": "list",
        "data": [
            {"id": m.name, "object": "model", "created": m.created, "owned_by": "tf-zoneout"} for m in models
        ],
    }


@router.get("/v1/models/{name}", response_model=ModelInfo, responses=responses(404))
async def get_model(model: ModelDep):
    """One loaded model (its newest version)."""
    return model.describe()
