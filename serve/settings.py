"""Service settings: one pydantic-settings class, read from ``ZONEOUT_*`` environment variables."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from tf_zoneout.saved_model import signatures
from tf_zoneout_serve.schemas import MAX_NEW_TOKENS, MAX_TEXT_CHARS, largest_request_bytes


class Settings(BaseSettings):
    """Every knob of the service, e.g.
    ``ZONEOUT_MODEL_BASE=models uvicorn --factory tf_zoneout_serve.app:create_app``.

    Each field is read from ``ZONEOUT_<FIELD>`` (``ZONEOUT_MAX_BATCH_SIZE=32``); its description is
    the field's documentation (docs/guide/serving.md lists them all).

    Raises:
        pydantic.ValidationError: a value is out of range, or ``max_body_bytes`` is too small for
            a request of ``max_text_chars`` characters (the message gives the least size).
    """

    model_config = SettingsConfigDict(env_prefix="ZONEOUT_", protected_namespaces=())

    model_base: Path = Field(Path("models"), description="TF Serving layout: MODEL_BASE/NAME/VERSION/")
    tf_serving: str | None = Field(None, description="HOST:PORT of TF Serving's gRPC API (else in-process)")
    batching: bool = Field(True, description="group concurrent requests into one model call")
    max_batch_size: int = Field(16, ge=1, le=1024)
    max_batch_wait_ms: float = Field(
        5.0, ge=0, le=1000, description="while the model is busy, how long a batch waits for more requests"
    )
    max_queue: int = Field(64, ge=1, description="requests waiting per model; more get 503")
    model_concurrency: int = Field(1, ge=1, le=64, description="model calls running at once per model")
    max_body_bytes: int = Field(262_144, ge=1024, description="larger request bodies get 413")
    max_new_tokens: int = Field(
        MAX_NEW_TOKENS,
        ge=1,
        le=signatures.MAX_NEW_TOKENS,
        description="largest max_new_tokens a request may ask",
    )
    max_text_chars: int = Field(
        MAX_TEXT_CHARS, ge=1, description="longest prompt or scored text, in characters"
    )
    poll_seconds: float = Field(2.0, gt=0, description="how often the model base is checked for new versions")
    stream_chunk_tokens: int = Field(
        64, ge=1, le=256, description="tokens per streamed piece (one model call continuing from the state)"
    )
    retry_after_seconds: int = Field(1, ge=1)
    api_keys: SecretStr | None = Field(
        None, description="bearer keys for the model routes: 'k1,k2' or '@FILE' (one per line); unset: open"
    )
    metrics_need_key: bool = Field(False, description="with api_keys: /metrics needs a key too")

    @model_validator(mode="after")
    def body_limit_admits_every_valid_request(self):
        """Refuse a body limit that would refuse requests the text limit allows."""
        needed = largest_request_bytes(self.max_text_chars)
        if self.max_body_bytes < needed:
            raise ValueError(
                f"max_body_bytes={self.max_body_bytes} would refuse valid requests: texts of "
                f"max_text_chars={self.max_text_chars} characters can take {needed} bytes of JSON; "
                f"raise max_body_bytes to at least {needed} or lower max_text_chars"
            )
        return self
