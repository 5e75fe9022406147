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

from schemathesis.python import asgi  # noqa: E402

from serve.app import create_app  # noqa: E402
from serve.settings import Settings  # noqa: E402

EXAMPLES_PER_OPERATION = 50
CONFIG = """
seed = 20261128

[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "404", "503"]
"""


@pytest.fixture(scope="module")
def api_schema(model_base):
    app = create_app(Settings(model_base=model_base, poll_seconds=60))
    schema = schemathesis.openapi.from_asgi("/openapi.json", app, config=schemathesis.Config.from_str(CONFIG))
    client = asgi.get_client(app)  # starts the app's lifespan (kept for the process)
    deadline = time.monotonic() + 120
    while client.get("/health").status_code != 200:
        assert time.monotonic() < deadline, "the service did not load its models"
        time.sleep(0.2)
    return schema


def operations(schema):
    found = []
    for result in schema.get_all_operations():
        found.append(result.ok())
    return found


@pytest.mark.parametrize("mode", [schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE])
def test_every_request_gets_a_documented_answer(api_schema, mode):
    ops = operations(api_schema)
    assert {f"{op.method.upper()} {op.path}" for op in ops} >= {
        "POST /v1/models/{name}/generate",
        "POST /v1/models/{name}/generate_stream",
        "POST /v1/models/{name}/score",
        "GET /v1/models/{name}",
        "GET /health",
    }
    fuzzed, statuses = [], {}
    for operation in ops:

        @settings(
            max_examples=EXAMPLES_PER_OPERATION,
            derandomize=True,
            deadline=None,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        @given(case=operation.as_strategy(generation_mode=mode))
        def check(case):
            response = case.call_and_validate()
            statuses.setdefault(operation.label, []).append(response.status_code)

        try:
            check()
        except Unsatisfiable:
            # No invalid request exists for it (e.g. GET /v1/models/{name}: any string is a name).
            assert mode is schemathesis.GenerationMode.NEGATIVE, operation.label
            continue
        fuzzed.append(operation.label)
    assert {"POST /v1/models/{name}/generate", "POST /v1/models/{name}/score"} <= set(fuzzed)
    # The fuzz reached the models, and (negative mode) the validation, not only the 404 of unknown names.
    for label in ("POST /v1/models/{name}/generate", "POST /v1/models/{name}/score"):
        seen = statuses[label]
        assert len(seen) >= 20, (label, len(seen))
        expected = 200 if mode is schemathesis.GenerationMode.POSITIVE else 422
        assert expected in seen, (label, sorted(set(seen)))
