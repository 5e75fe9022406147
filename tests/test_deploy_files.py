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


def test_dockerfile_builds_the_cpu_image_by_default_and_the_gpu_variant_with_an_argument():
    text = (ROOT / "Dockerfile").read_text()
    assert "\nARG EXTRAS=serve\n" in text and 'pip install ".[${EXTRAS}]"' in text
    assert "--build-arg EXTRAS=serve,gpu" in text  # the GPU variant, documented in the file
    project = __import__("tomllib").loads((ROOT / "pyproject.toml").read_text())["project"]
    assert any(d.startswith("tensorflow[and-cuda]") for d in project["optional-dependencies"]["gpu"])


def test_dockerfile_runs_the_service_as_non_root_with_a_healthcheck():
    text = (ROOT / "Dockerfile").read_text()
    assert text.startswith("#") and "FROM python:3.11-slim" in text
    assert "\nUSER 10001\n" in text and "HEALTHCHECK" in text and "/health" in text
    assert 'VOLUME ["/models"]' in text and "tf_zoneout_serve.app:create_app" in text and "--factory" in text


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
    command = services["tf-serving"]["command"]
    assert "--model_config_file=/models/models.config" in command
    assert (
        "--enable_batching" in command
        and "--batching_parameters_file=/models/batching_parameters.txt" in command
    )
    assert services["api"]["environment"]["ZONEOUT_TF_SERVING"] == "tf-serving:8500"
    assert services["api"]["build"] == "."
    for name in ("api", "tf-serving"):
        assert "./models:/models:ro" in services[name]["volumes"]


def test_published_models_are_listed_in_a_valid_tf_serving_config(tmp_path):
    from google.protobuf import text_format
    from tensorflow_serving.config import model_server_config_pb2

    from tf_zoneout.saved_model.model_base import publish

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


def _batching_parameters_message():
    """TF Serving's ``tensorflow.serving.BatchingParameters`` (session_bundle_config.proto), declared
    from its field names, numbers and types: tensorflow-serving-api does not ship that proto."""
    from google.protobuf import descriptor_pb2, descriptor_pool, message_factory, wrappers_pb2

    file = descriptor_pb2.FileDescriptorProto(
        name="zoneout_test/batching_parameters.proto",
        package="tensorflow.serving",
        dependency=["google/protobuf/wrappers.proto"],
        syntax="proto3",
    )
    message = file.message_type.add(name="BatchingParameters")
    field = descriptor_pb2.FieldDescriptorProto
    wrapped = {
        "max_batch_size": (1, ".google.protobuf.Int64Value"),
        "batch_timeout_micros": (2, ".google.protobuf.Int64Value"),
        "max_enqueued_batches": (3, ".google.protobuf.Int64Value"),
        "num_batch_threads": (4, ".google.protobuf.Int64Value"),
        "thread_pool_name": (5, ".google.protobuf.StringValue"),
    }
    for name, (number, type_name) in wrapped.items():
        message.field.add(
            name=name, number=number, type=field.TYPE_MESSAGE, type_name=type_name, label=field.LABEL_OPTIONAL
        )
    message.field.add(name="allowed_batch_sizes", number=6, type=field.TYPE_INT64, label=field.LABEL_REPEATED)
    message.field.add(
        name="pad_variable_length_inputs", number=7, type=field.TYPE_BOOL, label=field.LABEL_OPTIONAL
    )
    pool = descriptor_pool.DescriptorPool()
    pool.AddSerializedFile(wrappers_pb2.DESCRIPTOR.serialized_pb)
    pool.Add(file)
    return message_factory.GetMessageClass(
        pool.FindMessageTypeByName("tensorflow.serving.BatchingParameters")
    )


def test_published_models_get_tf_serving_batching_parameters_that_parse(tmp_path):
    from google.protobuf import text_format

    from tf_zoneout.saved_model.model_base import BATCHING_PARAMETERS_FILE, publish
    from tf_zoneout_serve.settings import Settings

    export = tmp_path / "export"
    export.mkdir()
    (export / "saved_model.pb").write_bytes(b"")
    publish(export, tmp_path / "models", "char_lm")
    path = tmp_path / "models" / BATCHING_PARAMETERS_FILE
    parameters = text_format.Parse(path.read_text(), _batching_parameters_message()())
    defaults = Settings()
    assert parameters.max_batch_size.value == defaults.max_batch_size
    assert parameters.batch_timeout_micros.value == int(defaults.max_batch_wait_ms * 1000)
    assert parameters.max_batch_size.value * parameters.max_enqueued_batches.value == defaults.max_queue
    assert parameters.num_batch_threads.value >= 1
    # An operator's own tuning survives the next publish.
    path.write_text("max_batch_size { value: 64 }\n")
    publish(export, tmp_path / "models", "char_lm")
    assert path.read_text() == "max_batch_size { value: 64 }\n"
    with pytest.raises(text_format.ParseError):  # the check can fail: a misspelt field
        text_format.Parse("max_batch_sise { value: 1 }", _batching_parameters_message()())
