"""One request's row through a model's batcher, with overload and client-disconnect handling."""

from __future__ import annotations

import asyncio

from fastapi import Request

from tf_zoneout_serve.batching import OverloadedError
from tf_zoneout_serve.errors import ApiError
from tf_zoneout_serve.registry import LoadedModel
from tf_zoneout_serve.settings import Settings


async def run_signature(
    model: LoadedModel, signature: str, inputs: dict, request: Request, settings: Settings
) -> dict:
    """The signature's outputs for one row; 503 with Retry-After on overload; gives up (and frees the
    queue slot) when the client disconnects."""
    task = asyncio.ensure_future(model.batchers[signature].submit(inputs))
    while True:
        done, _ = await asyncio.wait({task}, timeout=0.25)
        if done:
            break
        if await request.is_disconnected():
            task.cancel()  # the batcher drops cancelled requests
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
