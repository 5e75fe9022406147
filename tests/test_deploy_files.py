"""Dockerfile and docker-compose.yml, checked statically (no Docker engine on these machines)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def tool(name: str) -> str:
    path = shutil.which(name) or str(Path(sys.executable).parent / name)
    if not Path(path).exists():
        pytest.skip(f"{name} is not installed (pip install -e '.[dev]')")
    return path


def test_dockerfile_passes_hadolint():
    done = subprocess.run([tool("hadolint"), str(ROOT / "Dockerfile")], capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_dockerfile_runs_the_service_as_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "\nUSER 10001\n" in text and "HEALTHCHECK" in text and "/health" in text
    assert 'VOLUME ["/models"]' in text and "tf_zoneout_serve.app:app" in text


def test_compose_file_matches_the_compose_schema_and_pairs_api_with_tf_serving():
    compose = ROOT / "docker-compose.yml"
    done = subprocess.run(
        [tool("check-jsonschema"), "--builtin-schema", "vendor.compose-spec", str(compose)],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    import yaml

    services = yaml.safe_load(compose.read_text())["services"]
    assert services["tf-serving"]["image"].startswith("tensorflow/serving:")
    assert "--model_config_file=/models/models.config" in services["tf-serving"]["command"]
    assert services["api"]["environment"]["ZONEOUT_TF_SERVING"] == "tf-serving:8500"
    assert services["api"]["build"] == "."
    for name in ("api", "tf-serving"):
        assert "./models:/models:ro" in services[name]["volumes"]


def test_published_models_are_listed_in_a_valid_tf_serving_config(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from tf_zoneout.model_base import publish

    export = tmp_path / "export"
    export.mkdir()
    (export / "saved_model.pb").write_bytes(b"")
    for name in ("char_lm", "adder", "char_lm"):
        publish(export, tmp_path / "models", name)
    assert sorted(p.name for p in (tmp_path / "models" / "char_lm").iterdir()) == ["1", "2"]
    config = text_format.Parse(
        (tmp_path / "models" / "models.config").read_text(), model_server_config_pb2.ModelServerConfig()
    )
    entries = {c.name: c.base_path for c in config.model_config_list.config}
    assert entries == {"adder": "/models/adder", "char_lm": "/models/char_lm"}
