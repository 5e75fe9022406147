"""POST /v1/models/{name}/predict: any signature of any loaded SavedModel, tensors as JSON."""

from __future__ import annotations

from fastapi import APIRouter, Request

from tf_zoneout_serve import tensors
from tf_zoneout_serve.dependencies import SettingsDep, model_offering
from tf_zoneout_serve.engine import run_signature
from tf_zoneout_serve.errors import ApiError, responses
from tf_zoneout_serve.operations import Operation
from tf_zoneout_serve.schemas import PredictRequest, PredictResponse

PredictingModel = model_offering(Operation.PREDICT)

router = APIRouter()


@router.post(
    "/v1/models/{name}/predict",
    response_model=PredictResponse,
    responses=responses(400, 404, 413, 415, 422, 503),
)
async def predict(model: PredictingModel, body: PredictRequest, request: Request, settings: SettingsDep):
    """Run one signature on a batch, as TF Serving's REST ``predict`` (columnar ``inputs``): every
    model, including SavedModels without tf-zoneout metadata (a user's own ``model.export()``).
    ``GET /v1/models/{name}`` lists each signature's inputs with their dtypes and shapes; inputs
    that do not fit them (names, types, shapes, batch sizes) get 400 saying which and why; a
    ``signature_name`` the model does not have gets 404 naming those it has."""
    specs = model.signature_inputs.get(body.signature_name)
    if specs is None:
        raise ApiError(
            404,
            f"signature_name: model {model.name} has no signature {body.signature_name!r} "
            f"(it has {', '.join(sorted(model.signature_inputs))})",
            "unknown_signature",
        )
    try:
        inputs = tensors.to_arrays(specs, body.inputs)
    except tensors.InputError as error:
        raise ApiError(400, f"inputs: {error}", "invalid_inputs") from None
    outputs = await run_signature(model, body.signature_name, inputs, request, settings)
    return {
        "model": model.name,
        "version": model.version,
        "signature_name": body.signature_name,
        "outputs": {key: tensors.to_json(value) for key, value in sorted(outputs.items())},
    }
