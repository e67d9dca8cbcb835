"""The README's example transcript is real output of the command it shows (issue 9, item 16).

The test runs ``gradlang run examples/logistic_regression.grad`` at the README's terminal width
and compares every summary row that does not depend on the machine (objective, reports, params,
posteriors; not steps/s, seconds or the progress bar) with the README's block: the text of each
row exactly, its numbers to 1e-5 relative (float32 sums may differ in the last digit between CPUs).
The program shown above the transcript must be the example's code, comments aside.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
COMMAND = "gradlang run examples/logistic_regression.grad"
NUMBER = re.compile(r"[-+]?\d+(?:,\d{3})*(?:\.\d*)?(?:[eE][-+]?\d+)?")
STABLE = ("objective", "report ", "param ", "posterior ")


def _blocks(readme: str) -> list[str]:
    return re.findall(r"^```\n(.*?)^```$", readme, flags=re.S | re.M)


def _transcript(readme: str) -> str:
    return next(b for b in _blocks(readme) if b.startswith(f"$ {COMMAND}\n"))


def _rows(text: str) -> dict[str, str]:
    """The summary table's rows, ``quantity -> value``, a wrapped value joined to its row."""
    rows: list[list[str]] = []
    for line in text.splitlines():
        if "│" not in line:
            continue
        cells = [c.strip() for c in line.strip().strip("│").split("│")]
        if len(cells) != 2:
            continue
        if cells[0]:
            rows.append(cells)
        elif rows:
            rows[-1][1] += " " + cells[1]
    return {k: " ".join(v.split()) for k, v in rows if k.startswith(STABLE)}


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "gradlang"
    return [str(script)] if script.exists() else [sys.executable, "-m", "gradlang.cli"]


def _code(text: str) -> list[str]:
    lines = (re.sub(r"#.*", "", line).rstrip() for line in text.splitlines())
    return [" ".join(line.split()) for line in lines if line.strip()]


def test_readme_program_is_the_example():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    program = next(b for b in _blocks(readme) if "minimize" in b and not b.startswith("$"))
    example = (ROOT / "examples/logistic_regression.grad").read_text(encoding="utf-8")
    assert _code(program) == _code(example)


def test_readme_transcript_is_the_commands_output():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    block = _transcript(readme)
    width = max(len(line) for line in block.splitlines() if "│" in line)
    env = {**os.environ, "COLUMNS": str(width), "JAX_PLATFORMS": "cpu"}
    proc = subprocess.run(_cli() + COMMAND.split()[1:], cwd=ROOT, capture_output=True, text=True,
                          timeout=600, env=env)
    assert proc.returncode == 0, proc.stderr
    shown, real = _rows(block), _rows(proc.stdout + proc.stderr)
    assert real, proc.stdout
    assert list(shown) == list(real), (shown, real)
    for key in real:
        assert NUMBER.sub("#", shown[key]) == NUMBER.sub("#", real[key]), (key, shown[key], real[key])
        numbers = [[float(n.replace(",", "")) for n in NUMBER.findall(v)] for v in (shown[key], real[key])]
        np.testing.assert_allclose(numbers[0], numbers[1], rtol=1e-5, err_msg=key)
