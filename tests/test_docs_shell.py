"""The docs' shell lines stay true: every ``curl`` and ``lm_eval`` line and every block marked "with
the server running" runs against a real ``zoneout serve`` process serving what the page describes; every
``make`` target shown exists; every ``python -m`` command's flags are accepted; every file a listing
names exists. (``zoneout`` commands are checked in test_docs.py; ``docker`` lines cannot run here,
no Docker engine: the Dockerfile and compose file are checked statically in test_deploy_files.py.)"""

from __future__ import annotations

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest
from test_docs import PAGES, PYTHON_BLOCK, ROOT, page_id

SERVER_BLOCK_MARK = "# with the server running"
DOCUMENTED_PORT = re.compile(r"(?:http://)?(?:localhost|127\.0\.0\.1):8000")


def code_lines(page: Path) -> list[str]:
    """The page's shell lines: indented code and fenced blocks that are not Python, with continued
    lines joined and comments after the command left out."""
    lines, fenced, language = [], False, ""
    for line in page.read_text().replace("\\\n", " ").splitlines():
        if line.startswith("```"):
            fenced, language = not fenced, line[3:].strip()
            continue
        if (fenced and language not in ("python", "py", "")) or (not fenced and line.startswith("    ")):
            command = re.sub(r"\s#\s.*$", "", line.strip())
            if command and not command.startswith("#"):
                lines.append(command)
    return lines


def server_blocks(page: Path) -> list[str]:
    return [b for b in PYTHON_BLOCK.findall(page.read_text()) if b.startswith(SERVER_BLOCK_MARK)]


def commands_starting(*prefixes: str) -> list[tuple[str, str]]:
    return [(page_id(p), line) for p in PAGES for line in code_lines(p) if line.startswith(prefixes)]


SERVED_PAGES = [p for p in PAGES if server_blocks(p) or any(c.startswith("curl ") for c in code_lines(p))]


def test_the_pages_show_what_this_module_checks():
    assert {page_id(p) for p in SERVED_PAGES} >= {"guide/serving.md", "guide/export.md"}
    assert len(commands_starting("make ")) >= 4 and commands_starting("python -m ")


def _curl(command: str, url: str) -> tuple[int, str]:
    """Run a page's curl line against ``url`` (for the documented localhost:8000); (status, body)."""
    argv = shlex.split(DOCUMENTED_PORT.sub(url, command))
    done = subprocess.run(
        [*argv, "--max-time", "120", "-w", "\n%{http_code}"], capture_output=True, text=True
    )
    assert done.returncode == 0, f"`{command}` failed: {done.stderr}"
    body, _, status = done.stdout.rpartition("\n")
    return int(status), body


@pytest.mark.parametrize("page", SERVED_PAGES, ids=page_id)
def test_curl_lines_and_server_examples_run_against_a_real_server(
    page, smoke_run, tmp_path, monkeypatch, request
):
    from bench.local_server import LocalServer
    from tf_zoneout.saved_model.model_base import publish

    monkeypatch.chdir(tmp_path)  # the page's own blocks write models/... here
    for block in PYTHON_BLOCK.findall(page.read_text()):
        if not block.startswith(SERVER_BLOCK_MARK):
            exec(compile(block, str(page), "exec"), {})
    text = page.read_text()
    if "char_ptb_demo" in text:  # `make demo`'s model: the session's smoke char_ptb export stands in
        _, run_dir, _ = smoke_run("char_ptb", with_trainer=False)
        publish(run_dir / "export", tmp_path / "models", "char_ptb_demo")
    with LocalServer(tmp_path / "models") as server:
        for command in (c for c in code_lines(page) if c.startswith("curl ")):
            status, body = _curl(command, server.url)
            assert status == 200, f"{page_id(page)}: `{command}` answered {status}: {body[:500]}"
            if " -sN " in f" {command} ":  # server-sent events
                events = [json.loads(line[6:]) for line in body.splitlines() if line.startswith("data: ")]
                assert events and "error" not in events[-1], body[-500:]
            else:
                assert "error" not in json.loads(body), body[:500]
        for command in (c for c in code_lines(page) if c.startswith("lm_eval ")):
            argv = shlex.split(DOCUMENTED_PORT.sub(server.url, command))
            offline = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
            done = subprocess.run(
                [sys.executable, "-m", "lm_eval", *argv[1:]],
                capture_output=True,
                text=True,
                timeout=600,
                env=offline,
            )
            assert done.returncode == 0 and "bits_per_byte" in done.stdout, (
                f"`{command}`: {done.stderr[-2000:]}"
            )
        for block in server_blocks(page):
            exec(compile(DOCUMENTED_PORT.sub(server.url, block), str(page), "exec"), {})


def test_every_make_target_shown_exists():
    for page, command in commands_starting("make "):
        target = shlex.split(command)[1]
        done = subprocess.run(["make", "-n", target], cwd=ROOT, capture_output=True, text=True)
        assert done.returncode == 0, f"{page}: `{command}`: {done.stderr}"


def test_every_python_m_command_shown_is_accepted():
    """``python -m tf_zoneout_train.compare_runs ...`` and ``python -m tf_zoneout_train.cli ...``
    (the latter as `zoneout`, through its parser) parse with the flags shown."""
    import importlib

    from tf_zoneout_train.cli import build_parser

    for page, command in commands_starting("python -m ", "PYTHONPATH="):
        argv = shlex.split(re.sub(r"<[^>]+>", "X", command))
        start = argv.index("python")  # after PYTHONPATH=..., taskset -c N
        module, arguments = argv[start + 2], argv[start + 3 :]
        if module == "tf_zoneout_train.cli":
            _, leftovers = build_parser().parse_known_args(arguments)
            assert all(a.startswith("--") or not a.startswith("-") for a in leftovers), (page, command)
            continue
        if not module.startswith(
            ("tf_zoneout", "bench")
        ):  # another project's tool: its --help lists the flags
            shown = subprocess.run([sys.executable, "-m", module, "--help"], capture_output=True, text=True)
            flags = {a.split("=")[0] for a in arguments if a.startswith("--")}
            assert shown.returncode == 0 and all(f in shown.stdout for f in flags), (page, command)
            continue
        parser = importlib.import_module(module).build_parser()
        try:
            parser.parse_args(arguments)
        except SystemExit:
            pytest.fail(f"{page}: `{command}` is refused by {module}")


def test_every_file_a_listing_names_exists():
    """development.md's map of the repository: each path it names is there."""
    page = ROOT / "docs" / "development.md"
    named = [line.split()[0] for line in code_lines(page) if re.match(r"^[\w./-]+/(\w+\.\w+)?\s", line + " ")]
    assert len(named) >= 20, named
    missing = [path for path in named if not (ROOT / path).exists()]
    assert not missing, f"development.md names files that do not exist: {missing}"
