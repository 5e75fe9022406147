"""Every error the service answers, in one place: the exception routes raise, the handlers that turn
errors into JSON bodies, and the OpenAPI description of each status."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field
from starlette.exceptions import HTTPException as StarletteHTTPException


class ErrorBody(BaseModel):
    detail: str = Field(..., description="what is wrong and, where it helps, how to fix it")


class ValidationErrorBody(BaseModel):
    detail: str = Field(..., description="every problem as 'field: message', joined by '; '")
    errors: list[dict] = Field(..., description="the same problems, one object each (pydantic's form)")


class ApiError(Exception):
    """An answer other than 2xx, raised by a route: ``status``, a ``detail`` message and the error kind
    counted in the metrics."""

    def __init__(self, status: int, detail: str, kind: str, headers: dict | None = None):
        super().__init__(detail)
        self.status, self.detail, self.kind, self.headers = status, detail, kind, headers or {}


STATUS_DESCRIPTIONS = {
    400: "The model is of another kind (e.g. an image classifier asked to generate, a seq2seq model "
    "asked to score), or predict's inputs do not fit the model's signature.",
    404: "No model of that name is loaded.",
    413: "The request body is larger than the server's max_body_bytes.",
    415: "The request body is not JSON: send Content-Type: application/json.",
    422: "The body does not match the schema (or exceeds a limit of this server); detail says which field.",
    503: "The model's queue is full: retry after Retry-After seconds.",
}


def responses(*statuses: int) -> dict:
    """OpenAPI ``responses`` for a route that can answer ``statuses`` (besides its 2xx)."""
    documented = {}
    for status in statuses:
        body = ValidationErrorBody if status == 422 else ErrorBody
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
        return error_response(error.status, error.detail, error.headers)

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError):
        count_error("invalid_request")
        problems = [
            f"{'.'.join(str(p) for p in e['loc'] if p != 'body') or 'body'}: {e['msg']}"
            for e in error.errors()
        ]
        body = {"detail": "; ".join(problems) or "invalid request", "errors": jsonable(error.errors())}
        return JSONResponse(body, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, error: StarletteHTTPException):
        count_error(f"http_{error.status_code}")
        return error_response(error.status_code, str(error.detail), getattr(error, "headers", None))


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
