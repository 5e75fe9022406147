"""Raw data files: checksums, and the one clear error for missing, truncated or corrupt files."""

from __future__ import annotations

import dataclasses
import functools
import gzip
import http.server
import io
import shutil
import tarfile
import threading

import pytest
from conftest import shared_data_dir

from tf_zoneout.data import sources
from tf_zoneout_train.cli import main as cli_main

VALID = "ptb/ptb.valid.txt"


def _copy_valid(tmp_path):
    data = shared_data_dir()
    (tmp_path / "ptb").mkdir()
    shutil.copy(data / f"{VALID}.gz", tmp_path / f"{VALID}.gz")
    return tmp_path / f"{VALID}.gz"


def test_gz_and_plain_copies_read_the_same_verified_content(tmp_path):
    gz = _copy_valid(tmp_path)
    content = sources.read(VALID, tmp_path)
    plain_dir = tmp_path / "plain"
    (plain_dir / "ptb").mkdir(parents=True)
    (plain_dir / VALID).write_bytes(gzip.decompress(gz.read_bytes()))
    assert sources.read(VALID, plain_dir) == content
    assert len(content) == sources.FILES[VALID].size


def test_one_changed_byte_gives_a_clear_error(tmp_path):
    gz = _copy_valid(tmp_path)
    raw = bytearray(gzip.decompress(gz.read_bytes()))
    raw[1000] ^= 0x01
    gz.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(sources.DataError) as info:
        sources.read(VALID, tmp_path)
    message = str(info.value)
    assert str(gz) in message and sources.FILES[VALID].sha256 in message and "Fix:" in message


def test_truncated_file_gives_a_clear_error(tmp_path):
    gz = _copy_valid(tmp_path)
    gz.write_bytes(gz.read_bytes()[:5000])
    with pytest.raises(sources.DataError, match=r"ptb\.valid\.txt\.gz") as info:
        sources.read(VALID, tmp_path)
    assert sources.FILES[VALID].sha256 in str(info.value)


def test_missing_file_gives_a_clear_error(tmp_path):
    with pytest.raises(sources.DataError) as info:
        sources.read("ptb/ptb.char.train.txt", tmp_path)
    message = str(info.value)
    assert "ptb/ptb.char.train.txt not found" in message
    assert sources.FILES["ptb/ptb.char.train.txt"].sha256 in message
    assert "ZONEOUT_DATA_DIR" in message


def test_verify_command_checks_counts_and_reports_errors(tmp_path, capsys):
    data = shared_data_dir()
    assert cli_main(["data", "verify", "ptb_word", "--data-dir", str(data)]) == 0
    out = capsys.readouterr().out
    assert "929,589 tokens" in out and "73,760 tokens" in out and "82,430 tokens" in out
    assert cli_main(["data", "verify", "ptb_word", "--data-dir", str(tmp_path)]) == 2
    assert "not found" in capsys.readouterr().out


def test_download_from_a_standard_source_extracts_and_verifies(tmp_path, monkeypatch):
    """The download path, against a local HTTP server holding a simple-examples.tgz layout."""

    data = shared_data_dir()
    content = gzip.decompress((data / f"{VALID}.gz").read_bytes())
    served = tmp_path / "served"
    served.mkdir()
    with tarfile.open(served / "simple-examples.tgz", "w:gz") as archive:
        info = tarfile.TarInfo("./simple-examples/data/ptb.valid.txt")
        info.size = len(content)
        archive.addfile(info, io.BytesIO(content))
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}/simple-examples.tgz"
        monkeypatch.setitem(sources.FILES, VALID, dataclasses.replace(sources.FILES[VALID], url=url))
        monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
        monkeypatch.setenv("ZONEOUT_CACHE_DIR", str(tmp_path / "cache"))
        assert sources.read(VALID) == content
        assert not list((tmp_path / "cache").glob("*.partial")), "no partial file left behind"
        server.shutdown()
        assert sources.read(VALID) == content  # second read from the cache, server gone
    finally:
        server.shutdown()
        server.server_close()


def test_failed_download_gives_a_clear_error_and_leaves_nothing(tmp_path, monkeypatch):
    url = "http://127.0.0.1:9/simple-examples.tgz"  # discard port: connection refused
    monkeypatch.setitem(sources.FILES, VALID, dataclasses.replace(sources.FILES[VALID], url=url))
    monkeypatch.delenv(sources.DATA_DIR_ENV, raising=False)
    monkeypatch.setenv("ZONEOUT_CACHE_DIR", str(tmp_path / "cache"))
    with pytest.raises(sources.DataError, match="downloading"):
        sources.read(VALID)
    assert list((tmp_path / "cache").iterdir()) == []
