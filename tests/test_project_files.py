"""The project's own files: one version everywhere, the license the package declares, the citation."""

from __future__ import annotations

import hashlib
import importlib.metadata
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

import tf_zoneout

ROOT = Path(__file__).resolve().parents[1]
# The SHA-256 of the Apache License 2.0 text as the Apache Software Foundation publishes it
# (https://www.apache.org/licenses/LICENSE-2.0.txt).
APACHE_2_SHA256 = "cfc7749b96f63bd31c3c42b5c471bf756814053e847c10f3eb003417bc523d30"


def test_the_version_has_one_home_and_everything_reports_it():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert "version" not in project and "version" in project["dynamic"]
    assert importlib.metadata.version("tf-zoneout") == tf_zoneout.__version__  # what pip installed
    from tf_zoneout_serve.app import create_app
    from tf_zoneout_serve.settings import Settings

    assert create_app(Settings(model_base=ROOT)).version == tf_zoneout.__version__
    shown = subprocess.run(
        [sys.executable, "-m", "tf_zoneout_train.cli", "--version"], capture_output=True, text=True
    )
    assert shown.stdout.strip() == tf_zoneout.__version__, shown.stderr
    citation = (ROOT / "CITATION.cff").read_text()
    assert f"\nversion: {tf_zoneout.__version__}\n" in citation


def test_the_license_file_is_the_apache_2_text_the_package_declares():
    assert hashlib.sha256((ROOT / "LICENSE").read_bytes()).hexdigest() == APACHE_2_SHA256
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["license"] == "Apache-2.0" and project["license-files"] == ["LICENSE"]


def test_the_citation_file_is_valid_citation_file_format():
    tool = shutil.which("check-jsonschema") or str(Path(sys.executable).parent / "check-jsonschema")
    if not Path(tool).exists():
        pytest.skip("check-jsonschema is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [tool, "--builtin-schema", "vendor.citation-file-format", str(ROOT / "CITATION.cff")],
        capture_output=True,
        text=True,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    text = (ROOT / "CITATION.cff").read_text()
    assert "Zoneout: Regularizing RNNs by Randomly Preserving Hidden Activations" in text
    assert "arXiv:1606.01305" in text
