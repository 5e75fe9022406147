"""API keys: bearer-token authentication for the model routes when ``ZONEOUT_API_KEYS`` is set.

``ZONEOUT_API_KEYS`` holds comma-separated keys, or ``@FILE`` (one key per line). Every model
route (``/v1/models``, generate, score, predict, completions; ``/metrics`` with
``ZONEOUT_METRICS_NEED_KEY``) then needs ``Authorization: Bearer KEY``, else 401 with
``WWW-Authenticate: Bearer``. The routes carry the check, and the OpenAPI document its bearer
scheme and 401, only when keys are set: an open server documents no authentication. ``/health``
and the playground page stay open (the page asks for the key and sends it). Keys are compared in
constant time, against every key, and never logged or echoed. Unset: no authentication.
"""

from __future__ import annotations

import hmac
import ipaddress
from pathlib import Path
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from tf_zoneout_serve.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="an API key of ZONEOUT_API_KEYS")


class ApiKeys:
    """The accepted keys (none: authentication is off)."""

    def __init__(self, keys=()):
        self._keys = [k.encode() for k in keys if k]

    @classmethod
    def from_setting(cls, value: str | None) -> ApiKeys:
        """Keys from ``ZONEOUT_API_KEYS``: "k1,k2" or "@/path/to/file" (one key per line).

        Raises:
            ValueError: the file cannot be read, or names no key (the message never shows a key).
        """
        if not value:
            return cls()
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                keys = [line.strip() for line in path.read_text().splitlines()]
            except OSError as error:
                raise ValueError(
                    f"ZONEOUT_API_KEYS=@{path}: cannot read the key file ({error.strerror})"
                ) from None
        else:
            keys = [k.strip() for k in value.split(",")]
        found = cls([k for k in keys if k])
        if not found.enabled:
            raise ValueError("ZONEOUT_API_KEYS is set but holds no key")
        return found

    @property
    def enabled(self) -> bool:
        return bool(self._keys)

    def accepts(self, token: str) -> bool:
        """Whether ``token`` is a key: compared with every key, each in constant time."""
        given = token.encode()
        matched = False
        for key in self._keys:
            matched |= hmac.compare_digest(given, key)
        return matched


def _check(request: Request, credentials: HTTPAuthorizationCredentials | None) -> None:
    keys: ApiKeys = request.app.state.api_keys
    if not keys.enabled:
        return
    if credentials is None or not keys.accepts(credentials.credentials):
        problem = "no API key" if credentials is None else "an API key that is not valid"
        raise ApiError(
            401,
            f"this server needs an API key and the request has {problem}: send Authorization: Bearer KEY",
            "unauthorized",
            {"WWW-Authenticate": "Bearer"},
        )


Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_api_key(request: Request, credentials: Credentials) -> None:
    """Dependency of every model route: 401 unless the request carries a valid key (when keys are set)."""
    _check(request, credentials)


def exposure_warning(host: str, keys: ApiKeys) -> str | None:
    """A warning when the service listens beyond loopback with no API keys, else None."""
    if keys.enabled:
        return None
    try:
        loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        loopback = False
    if loopback:
        return None
    return (
        f"warning: serving on {host} without API keys: anyone who can reach the port can use every "
        "model. Set ZONEOUT_API_KEYS (comma-separated keys, or @FILE) to require a bearer key."
    )
