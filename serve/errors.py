"""Every error the service answers, in one place: the exception routes raise, the handlers that turn
errors into JSON bodies, and the OpenAPI description of each status."""

from __future__ import annotations

import re

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    detail: str = Field(..., description="what is wrong and, where it helps, how to fix it")


class OpenAIError(BaseModel):
    message: str
    type: str = Field(..., description="invalid_request_error, not_found_error, server_overloaded, ...")
    param: str | None = Field(None, description="the request field at fault, if one is")
    code: str | None = None


class OpenAIErrorBody(BaseModel):
    """OpenAI's error envelope, used on the OpenAI-compatible routes (the SDK raises its typed
    exceptions from the status and reads the message from here)."""

    error: OpenAIError


# Routes that answer in OpenAI's envelope instead of {"detail": ...}: completions and vLLM's tokenizer
# routes, at the root and under a model's base path (/models/{name}/...).
OPENAI_PATHS = re.compile(r"(/models/[^/]+)?(/v1/completions|/tokenize|/detokenize|/tokenizer_info)")
OPENAI_ERROR_TYPES = {
    400: "invalid_request_error",
    401: "authentication_error",
    404: "not_found_error",
    413: "invalid_request_error",
    415: "invalid_request_error",
    499: "client_closed_request",
    503: "server_overloaded",
}


def is_openai_path(path: str) -> bool:
    return OPENAI_PATHS.fullmatch(path) is not None


def openai_error_body(status: int, message: str, param: str | None = None, code: str | None = None) -> dict:
    kind = OPENAI_ERROR_TYPES.get(status, "server_error" if status >= 500 else "invalid_request_error")
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


class ValidationErrorBody(BaseModel):
    detail: str = Field(..., description="every problem as 'field: message', joined by '; '")
    errors: list[dict] = Field(..., description="the same problems, one object each (pydantic's form)")


class ApiError(Exception):
    """An answer other than 2xx, raised by a route: ``status``, a ``detail`` message and the error kind
    counted in the metrics."""

    def __init__(
        self, status: int, detail: str, kind: str, headers: dict | None = None, param: str | None = None
    ):
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers = status, detail, kind, headers or {}
        self.param = param  # the request field at fault (OpenAI's envelope names it)


STATUS_DESCRIPTIONS = {
    400: "predict's inputs do not fit the model's signature (detail says which and why); on "
    "/v1/completions, a body that breaks the schema (OpenAI answers 400 where the other routes "
    "answer 422).",
    401: "The server has API keys and the request has none, or not a valid one: send "
    "Authorization: Bearer KEY (with WWW-Authenticate: Bearer).",
    404: "No model of that name is loaded, or the model does not offer this operation (an image "
    "classifier does not generate, a seq2seq model does not score): the message names what it offers, "
    "and GET /v1/models/{name} lists its operations.",
    413: "The request body is larger than the server's max_body_bytes.",
    415: "The request body is not JSON: send Content-Type: application/json.",
    422: "The body does not match the schema (or exceeds a limit of this server); detail says which field.",
    503: "The model's queue is full: retry after Retry-After seconds.",
}


def unknown_model(name: str, loaded) -> ApiError:
    """The 404 for a model name that is not loaded, listing the ``loaded`` names."""
    known = ", ".join(sorted(loaded)) or "none loaded yet"
    return ApiError(404, f"no model named {name!r} (models: {known})", "unknown_model", param="model")


def responses(*statuses: int, openai: bool = False) -> dict:
    """OpenAPI ``responses`` for a route that can answer ``statuses`` (besides its 2xx); ``openai``:
    the bodies are OpenAI's error envelope."""
    documented = {}
    for status in statuses:
        body = OpenAIErrorBody if openai else ValidationErrorBody if status == 422 else ErrorBody
        documented[status] = {"model": body, "description": STATUS_DESCRIPTIONS[status]}
        if status == 503:
            documented[status]["headers"] = {
                "Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}
            }
    return documented


def error_response(status: int, detail: str, headers: dict | None = None) -> JSONResponse:
    return JSONResponse({"detail": detail}, status_code=status, headers=headers)


def install_error_handlers(app: FastAPI, count_error) -> None:
    """JSON error bodies for ApiError, request validation and Starlette's own HTTP errors (404 for an
    unknown path, 405 for a wrong method); ``count_error(kind)`` counts each."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, error: ApiError):
        count_error(error.kind)
        if is_openai_path(request.url.path):
            body = openai_error_body(error.status, error.detail, error.param, error.kind)
            return JSONResponse(body, status_code=error.status, headers=error.headers)
        return error_response(error.status, error.detail, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        count_error("invalid_request")
        fields = [".".join(str(p) for p in e["loc"] if p != "body") or "body" for e in error.errors()]
        problems = [f"{field}: {e['msg']}" for field, e in zip(fields, error.errors())]
        message = "; ".join(problems) or "invalid request"
        if is_openai_path(request.url.path):  # OpenAI answers a malformed request with 400
            name = request.path_params.get("name")
            if name is None and isinstance(error.body, dict):
                name = error.body.get("model")
            models = request.app.state.registry.models
            if isinstance(name, str) and name not in models:  # an unknown model is 404 whatever the rest
                return await api_error(request, unknown_model(name, models))
            body = openai_error_body(400, message, fields[0] if fields else None, "invalid_request")
            return JSONResponse(body, status_code=400)
        body = {"detail": message, "errors": jsonable(error.errors())}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        count_error(f"http_{error.status_code}")
        path = request.url.path
        if error.status_code == 404 and path.startswith(
            "/v1/"
        ):  # no route: OpenAI's clients read their envelope
            return JSONResponse(
                openai_error_body(404, unknown_route_message(path), None, "unknown_route"), 404
            )
        if is_openai_path(path):
            body = openai_error_body(error.status_code, str(error.detail))
            return JSONResponse(body, status_code=error.status_code, headers=getattr(error, "headers", None))
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))


CHAT_COMPLETIONS = "/v1/chat/completions"


def unknown_route_message(path: str) -> str:
    """What a path under /v1 that no route serves answers (as vLLM answers chat requests for a model
    without a chat template)."""
    if path.rstrip("/") == CHAT_COMPLETIONS:
        return (
            "chat completions are not served: these are completion models with no chat template; "
            "send the text to continue to POST /v1/completions"
        )
    return (
        f"no route {path}: this server offers POST /v1/completions, GET /v1/models, "
        "/v1/models/{name}/generate, generate_stream, score and predict, POST /tokenize and /detokenize, "
        "GET /tokenizer_info, and each language model's own base path /models/{name}/"
    )


def jsonable(value):
    """Validation errors as plain JSON: exceptions (in ctx) as text, bytes decoded, no doc URLs."""
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items() if k != "url"}
    if isinstance(value, list | tuple):
        return [jsonable(v) for v in value]
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if value is None or isinstance(value, str | int | float | bool):
        return value
    return str(value)
