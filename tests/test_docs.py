"""The documentation stays true: the site builds with ``mkdocs build --strict`` (a broken link, page or
reference fails), every Python block of the README and the docs runs as written, and every
``zoneout`` command they show is one the command line accepts (its flags and values check out)."""

from __future__ import annotations

import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[1]
PAGES = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
PYTHON_BLOCK = re.compile(r"```(?:python|py)\n(.*?)```", re.S)
# Pages whose examples read the shared data sets (skipped, with the reason shown, without them).
NEEDS_DATA = {"guide/data.md"}


def page_id(page: Path) -> str:
    return str(page.relative_to(ROOT / "docs")) if page.parent != ROOT else page.name


def test_the_site_builds_with_no_warning(tmp_path):
    mkdocs = shutil.which("mkdocs") or str(Path(sys.executable).parent / "mkdocs")
    if not Path(mkdocs).exists():
        pytest.skip("mkdocs is not installed (pip install -e '.[dev]')")
    done = subprocess.run(
        [mkdocs, "build", "--strict", "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        env={**__import__("os").environ, "NO_MKDOCS_2_WARNING": "1"},
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    reference = (tmp_path / "site" / "reference" / "layers" / "index.html").read_text()
    assert "ZoneoutLSTM" in reference and "zoneout_cells" in reference  # built from the docstrings


@pytest.mark.parametrize("page", [p for p in PAGES if PYTHON_BLOCK.search(p.read_text())], ids=page_id)
def test_every_python_block_runs(page, tmp_path, monkeypatch, request):
    if page_id(page) in NEEDS_DATA:
        shared_data_dir()
        from tensorflow_datasets.core import constants

        monkeypatch.setattr(constants, "DATA_DIR", request.getfixturevalue("tfds_dir"))
    monkeypatch.chdir(tmp_path)  # whatever a block writes lands here
    namespace = {}  # a page's blocks run in order in one namespace, as a reader would run them
    for block in PYTHON_BLOCK.findall(page.read_text()):
        if not block.startswith("# with the server running"):  # test_docs_shell.py runs those
            exec(compile(block, str(page), "exec"), namespace)


def shown_commands() -> list[tuple[str, list[str]]]:
    """(page, argv) of each ``zoneout ...`` line in the pages' code (indented or fenced), with
    optional parts of a synopsis (``[--name NAME]``) and trailing comments left out."""
    found = []
    for page in PAGES:
        text = page.read_text().replace("\\\n", " ")  # continued lines
        fenced = False
        for line in text.splitlines():
            if line.startswith("```"):
                fenced = not fenced
                continue
            if not (fenced or line.startswith(("    ", "\t"))):  # code only, never prose
                continue
            stripped = re.sub(r"^\s*(\$ )?(taskset -c \d+ )?", "", line)
            if not stripped.startswith("zoneout "):
                continue
            command = re.sub(r"\s#\s.*$", "", stripped)
            command = re.sub(r"\s[A-Z](?=\s|$)", " 0.1", command)  # a value left to the reader (P, Q, Z)
            while re.search(r"\[[^\[\]]*\]", command):
                command = re.sub(r"\s*\[[^\[\]]*\]", "", command)
            found.append((page_id(page), shlex.split(command)[1:]))
        table_rows = "\n".join(line for line in text.splitlines() if line.startswith("|"))
        for command in re.findall(r"`(zoneout [^`]+)`", table_rows):  # the tables' commands
            words = shlex.split(re.sub(r"\s[A-Z](?=\s|$)", " 0.1", command))[1:]
            if len(words) >= 2 and "[" not in command and "..." not in command:  # not a bare name
                found.append((page_id(page), words))
    return found


def test_every_zoneout_command_shown_is_accepted():
    from tf_zoneout_train import train_command
    from tf_zoneout_train.cli import build_parser
    from tf_zoneout_train.config import ConfigError

    commands = shown_commands()
    assert len(commands) >= 10, commands
    parser = build_parser()
    for page, argv in commands:
        if "--help" in argv:
            continue
        try:
            args, leftovers = parser.parse_known_args(argv)
        except SystemExit:
            pytest.fail(f"{page}: `zoneout {shlex.join(argv)}` is refused by the command line")
        if args.command == "train":
            args.overrides = leftovers
            if args.resume or args.task.isupper():  # a resume, or a synopsis (`zoneout train TASK`)
                continue
            try:  # the configuration the flags give resolves (values checked)
                train_command.resolve_config(args)
            except ConfigError as error:
                pytest.fail(f"{page}: `zoneout {shlex.join(argv)}`: {error}")
        elif leftovers and args.command != "data":
            pytest.fail(f"{page}: `zoneout {shlex.join(argv)}`: unknown {leftovers}")


def test_the_readme_is_a_front_door():
    text = (ROOT / "README.md").read_text()
    assert len(text.splitlines()) <= 200
    for link in ("docs/RESULTS.md", "docs/BENCHMARKS.md", "docs/getting-started.md", "LICENSE"):
        assert f"]({link}" in text, link


DOCTEST_MODULES = (
    "tf_zoneout.zoneout",
    "tf_zoneout.cells",
    "tf_zoneout.layers",
    "tf_zoneout.wrapper",
    "tf_zoneout_train.task_registry",
)


def test_the_docstring_examples_run():
    import doctest
    import importlib

    import keras
    import numpy as np
    import tensorflow as tf

    import tf_zoneout as tz

    finder = doctest.DocTestFinder()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    examples = 0
    for name in DOCTEST_MODULES:
        module = importlib.import_module(name)
        names = {**vars(module), "tz": tz, "keras": keras, "np": np, "tf": tf}
        for test in finder.find(module, globs=names):
            examples += len(test.examples)
            runner.run(test)
    assert examples >= 8 and runner.failures == 0, f"{runner.failures} of {runner.tries} examples failed"
