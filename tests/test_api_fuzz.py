"""Property-based test of the service against its own OpenAPI document (schemathesis, every check).

The app serves a smoke model of every kind. For each operation, schema-valid (positive) and
schema-invalid (negative) requests are generated with a fixed seed and a bounded number of
examples; every response must be documented, match its schema, and never be a 5xx. A
schema-valid request may only be answered 2xx, or with the documented 400 (the model is of
another kind), 404 (no model of that name) or 503 (overload); never 413 or 422.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable

schemathesis = pytest.importorskip("schemathesis")

from conftest import SERVED  # noqa: E402
from schemathesis.python import asgi  # noqa: E402

from tf_zoneout_serve.app import create_app  # noqa: E402
from tf_zoneout_serve.settings import Settings  # noqa: E402

EXAMPLES_PER_OPERATION = 30
EXAMPLES_PER_MODEL = 15
CONFIG = """
seed = 20261128

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "404", "503"]
"""


@pytest.fixture(scope="module")
def api_schema(model_base):
    # Smaller limits than the defaults (the OpenAPI document states them, so the generated
    # requests respect them): the contract is the same, and generating 1,000 tokens per
    # request only made the test slow.
    settings_ = Settings(model_base=model_base, poll_seconds=60, max_new_tokens=40, max_text_chars=2_000)
    app = create_app(settings_)
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_str(CONFIG))
    client = asgi.get_client(app)  # starts the app's lifespan (kept for the process)
    deadline = time.monotonic() + 120
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "the service did not load its models"
        time.sleep(0.2)
    return schema


def fuzz(operation, mode, statuses: dict, examples: int, name: str | None = None) -> bool:
    """Send ``examples`` generated requests for ``operation`` and validate every response; False when no
    request of that mode exists (e.g. no invalid GET /v1/models/{name}: any string is a name)."""
    label = operation.label + (f" [name={name}]" if name else "")
    fixed = {"path_parameters": {"name": name}} if name else {}

    @settings(
        max_examples=examples,
        derandomize=True,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(case=operation.as_strategy(generation_mode=mode, **fixed))
    def check(case):
        response = case.call_and_validate()
        statuses.setdefault(label, []).append(response.status_code)

    try:
        check()
    except Unsatisfiable:
        assert mode is schemathesis.GenerationMode.NEGATIVE, label
        return False
    return True


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_every_request_gets_a_documented_answer(api_schema, mode):
    ops = {}
    for result in api_schema.get_all_operations():
        operation = result.ok()
        ops[operation.label] = operation
    assert set(ops) >= {
        "POST /v1/models/{name}/generate",
        "POST /v1/models/{name}/generate_stream",
        "POST /v1/models/{name}/score",
        "GET /v1/models/{name}",
        "GET /health",
    }
    statuses: dict[str, list[int]] = {}
    for operation in ops.values():
        fuzz(operation, mode, statuses, EXAMPLES_PER_OPERATION)  # any name: mostly 404s
        if "{name}" in operation.path:  # and each served model by name, every task kind
            for name in SERVED:
                fuzz(operation, mode, statuses, EXAMPLES_PER_MODEL, name)
    positive = mode is schemathesis.GenerationMode.POSITIVE
    for name, task in SERVED.items():
        for route in ("generate", "score"):
            seen = statuses.get(f"POST /v1/models/{{name}}/{route} [name={name}]", [])
            assert len(seen) >= 10, (name, route, len(seen))
            if task == "pmnist" or (task == "seq2seq" and route == "score"):
                expected = 400 if positive else 422  # documented: the model is of another kind
            else:
                expected = 200 if positive else 422
            assert expected in seen, (name, route, sorted(set(seen)))
