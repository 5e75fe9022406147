"""The service against its own OpenAPI document: schemathesis' command line, every phase (examples,
coverage, fuzzing, stateful) and every check, for three seeds, against a real ``zoneout serve``
process serving a smoke model of every kind.

The contract it holds: a schema-valid request gets 2xx, or 404 (no model of that name, or the model
does not offer the operation: a classifier asked to generate), or 503 (overload); a schema-violating
one gets 422 (400 in OpenAI's envelope on /v1/completions); nothing is a 5xx, every answer is
documented and matches its schema. One documented exception: ``predict`` takes any signature's
tensors, which the OpenAPI document cannot describe per model, so inputs that do not fit the model's
signature get 400 (as TF Serving's REST predict answers); and token ids are any int32 in the
document, while each model's vocabulary decides which exist (an id outside it is 400, as vLLM
answers), and a tokenizer request without ``model`` is 400 when several language models are
served. The configuration below says so.
"""

from __future__ import annotations

import re
import subprocess
import sys

import httpx
import pytest
from conftest import LM, SEQ2SEQ, SERVED, WORD_LM

pytest.importorskip("schemathesis")

from bench.local_server import LocalServer

SEEDS = (20261202, 5, 1606)
EXAMPLES_PER_OPERATION = 20
PHASES = "examples,coverage,fuzzing,stateful"


def config_text() -> str:
    """schemathesis.toml: path names and completions' ``model`` drawn mostly from the served models
    (else nearly every generated name is unknown: 404), and predict's documented 400."""
    names = ", ".join(f'"{name}"' for name in SERVED)
    return f"""
[dictionaries.model_names]
values = [{names}]

[parameters]
"path.name" = {{ dictionary = "model_names", probability = 0.8 }}
"body.model" = {{ dictionary = "model_names", probability = 0.8 }}

[[operations]]
include-path-regex = "/predict$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "503"]

[[operations]]
include-path-regex = "(/v1/completions|/tokenize|/detokenize|/tokenizer_info)$"
checks.positive_data_acceptance.expected-statuses = ["2xx", "400", "404", "503"]
"""


@pytest.fixture(scope="module")
def served(model_base):
    # Smaller limits than the defaults (the OpenAPI document states them, so the generated requests
    # respect them): the contract is the same, and generating 1,000 tokens per request is slow.
    server = LocalServer(model_base, poll_seconds=60, max_new_tokens=40, max_text_chars=2_000)
    yield server
    server.stop()


@pytest.mark.parametrize("seed", SEEDS)
def test_every_phase_and_check_of_schemathesis_passes(served, tmp_path, seed):
    (tmp_path / "schemathesis.toml").write_text(config_text())
    argv = [sys.executable, "-m", "schemathesis.cli", "run", f"{served.url}/openapi.json"]
    argv += ["--checks", "all", "--phases", PHASES, "--seed", str(seed), "--no-color"]
    argv += ["--max-examples", str(EXAMPLES_PER_OPERATION), "--workers", "1"]
    run = subprocess.run(argv, cwd=tmp_path, capture_output=True, text=True, timeout=1200)
    output = run.stdout + run.stderr
    assert run.returncode == 0, output[-6000:]
    generated = re.search(r"(\d+) generated, (\d+) passed", output)
    assert generated and generated[1] == generated[2] and int(generated[1]) > 300, output[-3000:]
    for phase in ("Examples", "Coverage", "Fuzzing", "Stateful"):
        assert re.search(rf"✅\s+{phase}", output), (phase, output[-3000:])
    assert re.search(r"API Links:\s+\d+ covered", output), output[-3000:]  # stateful chains ran

    # The generated requests reached the models themselves, not only the 404 of unknown names.
    metrics = httpx.get(f"{served.url}/metrics").text
    for model, signature in ((LM, "score"), (LM, "serving_default"), (WORD_LM, "serving_default")):
        assert re.search(
            rf'zoneout_batch_size_count{{model="{model}",signature="{signature}"}} [1-9]', metrics
        )
    assert re.search(
        rf'zoneout_batch_size_count{{model="{SEQ2SEQ}",signature="serving_default"}} [1-9]', metrics
    )
