"""tf_zoneout.saved_model.model_base: the one home of the MODEL_BASE/NAME/VERSION layout."""

from __future__ import annotations

import pytest

from tf_zoneout.saved_model import model_base


def fake_export(folder):
    folder.mkdir(parents=True)
    (folder / "saved_model.pb").write_bytes(b"pb")
    (folder / model_base.METADATA_FILE).write_text('{"kind": "language_model"}')
    return folder


def test_publish_numbers_versions_and_only_complete_ones_are_served(tmp_path):
    export = fake_export(tmp_path / "run" / "export")
    base = tmp_path / "models"
    assert model_base.publish(export, base, "lm").name == "1"
    assert model_base.publish(export, base, "lm").name == "2"
    (base / "lm" / "3").mkdir()  # a version being written by hand: no saved_model.pb yet
    (base / ".hidden" / "1").mkdir(parents=True)  # not a model name
    assert model_base.versions(base / "lm") == [1, 2, 3]
    assert model_base.latest_versions(base) == {"lm": (2, base / "lm" / "2")}
    assert model_base.resolve_export(base / "lm") == base / "lm" / "2"
    assert model_base.read_metadata(base / "lm" / "2") == {"kind": "language_model"}
    assert 'name: "lm"' in (base / model_base.SERVING_CONFIG_FILE).read_text()
    assert not list((base / "lm").glob(".incoming-*"))


@pytest.mark.parametrize("name", ["", "..", "a/b", ".hidden", "x" * 65, "a..b"])
def test_bad_model_names_are_refused(tmp_path, name):
    with pytest.raises(ValueError, match="model name"):
        model_base.publish(fake_export(tmp_path / "export"), tmp_path / "models", name)


def test_missing_export_and_unknown_folder_say_what_is_wrong(tmp_path):
    with pytest.raises(FileNotFoundError, match="did the run finish"):
        model_base.publish(tmp_path / "nothing", tmp_path / "models", "lm")
    with pytest.raises(FileNotFoundError, match="neither a SavedModel"):
        model_base.resolve_export(tmp_path)
