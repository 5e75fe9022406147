"""Request guard as ASGI middleware, before any parsing: bodies that are not JSON get 415 (another
Content-Type) or 422 (bytes that are not Unicode text), bodies over the limit get 413 (declared by
Content-Length or counted while streaming, e.g. chunked)."""

from __future__ import annotations

import json

from tf_zoneout_serve.errors import is_openai_path, openai_error_body

BODY_METHODS = {"POST", "PUT", "PATCH"}


def is_json(content_type: bytes) -> bool:
    """application/json, or any application/*+json, with or without parameters (charset)."""
    media = content_type.split(b";", 1)[0].strip().lower()
    return media == b"application/json" or (media.startswith(b"application/") and media.endswith(b"+json"))


def is_unicode(body: bytes) -> bool:
    """Whether ``body`` decodes in the Unicode encoding JSON parsers detect from its first bytes
    (UTF-8 unless it starts as UTF-16 or UTF-32); a body that does not is not JSON at all."""
    try:
        body.decode(json.detect_encoding(body))
    except UnicodeDecodeError:
        return False
    return True


class RequestGuard:
    """Answers 415 or 413 itself; otherwise hands the app the whole (at most ``max_bytes``) body.

    ``on_reject(kind)`` is called for each rejection (for the metrics).
    """

    def __init__(self, app, max_bytes: int, on_reject=None):
        self.app, self.max_bytes, self.on_reject = app, max_bytes, on_reject

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http" or scope["method"] not in BODY_METHODS:
            return await self.app(scope, receive, send)
        headers = dict(scope.get("headers") or [])
        content_type = headers.get(b"content-type")
        declared = headers.get(b"content-length")
        if content_type is not None and not is_json(content_type):
            shown = content_type.decode("latin-1")
            return await self._reject(
                send, 415, f"Content-Type {shown!r} is not JSON: send application/json", scope["path"]
            )
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            return await self._reject(
                send, 413, f"request body larger than {self.max_bytes} bytes", scope["path"]
            )
        body, more = b"", True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            body += message.get("body", b"")
            more = message.get("more_body", False)
            if len(body) > self.max_bytes:
                return await self._reject(
                    send, 413, f"request body larger than {self.max_bytes} bytes", scope["path"]
                )
        if body and content_type is None:
            return await self._reject(
                send, 415, "the body has no Content-Type: send application/json", scope["path"]
            )
        if body and not is_unicode(body):
            return await self._reject(
                send, 422, "body: not valid UTF-8 (send JSON text UTF-8 encoded)", scope["path"]
            )
        replayed = False

        async def replay():
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()  # after the body: wait for the disconnect, as the server would

        return await self.app(scope, replay, send)

    async def _reject(self, send, status: int, detail: str, path: str = ""):
        if self.on_reject is not None:
            self.on_reject({413: "body_too_large", 422: "invalid_request"}.get(status, "not_json"))
        if is_openai_path(path):  # OpenAI answers a malformed body with 400
            status = 400 if status == 422 else status
            answer = openai_error_body(status, detail, "body" if status == 400 else None)
        elif status == 422:  # the validation errors' shape, as FastAPI's own 422s
            answer = {"detail": detail, "errors": [{"type": "json_invalid", "loc": ["body"], "msg": detail}]}
        else:
            answer = {"detail": detail}
        body = json.dumps(answer).encode()
        await send(
            {
                "type": "http.response.start",
                "status": status,
                "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(body)).encode()),
                ],
            }
        )
        await send({"type": "http.response.body", "body": body})
