"""Golden error messages: every ``tests/errors/NN_name.grad`` is a small malformed program whose
rendered error must equal ``tests/errors/NN_name.expected`` exactly.

A case with a fixture ``tests/errors/data/NN_name.npz`` is a data error: the program must compile,
and ``.fit(data=fixture, steps=1)`` must raise.  Everything runs from the repository root with
relative paths, so messages start ``tests/errors/NN_name.grad:L:C: error: ...``.

Regenerate the golden files (then read every one before committing) with

    GRADLANG_UPDATE_GOLDEN=1 .venv/bin/pytest tests/test_errors.py
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import gradlang
from gradlang.errors import GradlangError, InternalError

ROOT = Path(__file__).resolve().parent.parent
ERRORS = ROOT / "tests" / "errors"
DATA = ERRORS / "data"
CASES = sorted(ERRORS.glob("*.grad"))
UPDATE = os.environ.get("GRADLANG_UPDATE_GOLDEN") == "1"

# Programs whose error has, by its nature, no place in the text to point at.
UNLOCATED = {"53_no_objective"}

_HEAD = re.compile(r"^(?P<file>[^\s:]+\.grad):(?P<line>\d+):(?P<col>\d+): error: \S")
_CARETS = re.compile(r"^ *\| *\^+$")


def _rel(path: Path) -> str:
    return path.relative_to(ROOT).as_posix()


def _data_fixture(case: Path) -> Path | None:
    fixture = DATA / f"{case.stem}.npz"
    return fixture if fixture.exists() else None


def produce_error(case: Path) -> GradlangError:
    """Compile (and for data cases, fit) ``case`` from the repo root; return the error it raises."""
    fixture = _data_fixture(case)
    cwd = os.getcwd()
    os.chdir(ROOT)
    try:
        if fixture is None:
            try:
                gradlang.compile(_rel(case))
            except GradlangError as err:
                return err
            pytest.fail(f"{_rel(case)} compiled without an error")
        try:
            program = gradlang.compile(_rel(case))
        except GradlangError as err:
            pytest.fail(f"{_rel(case)} is a data case but failed to compile:\n{err.render()}")
        try:
            program.fit(data=_rel(fixture), steps=1)
        except GradlangError as err:
            return err
        pytest.fail(f"{_rel(case)} fitted {_rel(fixture)} without an error")
    finally:
        os.chdir(cwd)


def test_there_are_enough_cases():
    assert len(CASES) >= 30
    for case in CASES:
        assert re.fullmatch(r"\d\d_[a-z0-9_]+", case.stem), case.name
        lines = case.read_text(encoding="utf-8").splitlines()
        assert 2 <= len(lines) <= 10, f"{case.name}: keep error programs short"
        assert lines[0].startswith("#"), f"{case.name}: the first line says what is wrong"


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_golden_error(case: Path):
    err = produce_error(case)
    rendered = err.render()
    expected_file = case.with_suffix(".expected")
    if UPDATE and not isinstance(err, InternalError):  # never enshrine a bug as a golden message
        expected_file.write_text(rendered + "\n", encoding="utf-8")
    assert not isinstance(err, InternalError), f"a bug in gradlang, not a user error:\n{rendered}"
    assert "Traceback" not in rendered
    if not UPDATE:
        assert expected_file.exists(), f"no golden file {_rel(expected_file)}; run with GRADLANG_UPDATE_GOLDEN=1"
        assert rendered == expected_file.read_text(encoding="utf-8").rstrip("\n")


@pytest.mark.parametrize("case", CASES, ids=[c.stem for c in CASES])
def test_error_is_located_with_help(case: Path):
    """Every diagnostic names file:line:col, shows a caret line under the span and a help line."""
    err = produce_error(case)
    if case.stem in UNLOCATED:
        assert all(d.span is None for d in err.diagnostics)
        assert all(d.help for d in err.diagnostics), err.render()
        return
    for diag in err.diagnostics:
        text = diag.render(err.kind)
        lines = text.splitlines()
        head = _HEAD.match(lines[0])
        assert head, f"no file:line:col in\n{text}"
        assert head["file"] == _rel(case), f"the error points into another file:\n{text}"
        assert any(_CARETS.match(line) for line in lines), f"no caret line in\n{text}"
        assert lines[-1].startswith("help: "), f"no help line in\n{text}"


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "gradlang"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gradlang.cli"]


# 09's message is short; 10's head line and 41's help line are longer than 80 columns, which a
# console that wraps its output at the terminal width would break (carets included).
@pytest.mark.parametrize("stem", ["09_missing_colon", "10_unknown_name_did_you_mean", "41_unknown_optimizer"])
def test_cli_check_prints_the_golden_error(stem: str):
    case = ERRORS / f"{stem}.grad"
    env = {**os.environ, "COLUMNS": "80"}  # a common terminal width, and what a pipe gets by default
    proc = subprocess.run(_cli() + ["check", _rel(case)], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, env=env)
    assert proc.returncode == 1, proc.stderr

    def norm(text: str) -> str:
        return "\n".join(line.rstrip() for line in text.strip("\n").splitlines())

    assert norm(proc.stderr) == norm(case.with_suffix(".expected").read_text(encoding="utf-8"))
