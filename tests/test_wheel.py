"""The wheel carries the grammar, the stdlib and the gallery: build it, install it into a fresh venv
(dependencies are lent from this environment through a .pth file, so nothing is downloaded), and
run a gallery example from outside the repository with the installed console script."""

import json
import os
import subprocess
import sys
import sysconfig
import zipfile

import pytest

from .conftest import ROOT


@pytest.mark.slow
def test_wheel_installs_and_runs_an_example_outside_the_repo(tmp_path):
    dist = tmp_path / "dist"
    build = subprocess.run([sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(dist),
                            str(ROOT)], capture_output=True, text=True)
    if build.returncode != 0 and "No module named build" in build.stderr:
        pytest.skip("the 'build' package is not installed")
    assert build.returncode == 0, build.stderr[-2000:]
    wheel = next(dist.glob("gradlang-*.whl"))
    names = zipfile.ZipFile(wheel).namelist()
    assert "gradlang/grammar/gradlang.lark" in names
    assert "gradlang/stdlib/losses.grad" in names
    assert "gradlang/examples/ridge.grad" in names and "gradlang/examples/data/diabetes.npz" in names

    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    py = venv / "bin" / "python"
    site = subprocess.run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                          capture_output=True, text=True, check=True).stdout.strip()
    # lend this environment's dependencies (jax, numpyro, ...) without the project itself
    with open(os.path.join(site, "lend_deps.pth"), "w") as f:
        f.write(sysconfig.get_paths()["purelib"] + "\n")
    install = subprocess.run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", str(wheel)],
                             capture_output=True, text=True)
    assert install.returncode == 0, install.stderr[-2000:]

    outside = tmp_path / "elsewhere"
    outside.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    where = subprocess.run([str(py), "-c", "import gradlang, os; print(os.path.dirname(gradlang.__file__))"],
                           cwd=outside, capture_output=True, text=True, env=env, check=True).stdout.strip()
    assert where.startswith(site), where  # the installed copy, not the checkout
    example = os.path.join(where, "examples", "ridge.grad")
    out = outside / "r.json"
    run = subprocess.run([str(venv / "bin" / "gradlang"), "run", example, "--steps", "50", "--quiet",
                          "--out", str(out)], cwd=outside, capture_output=True, text=True, env=env)
    assert run.returncode == 0, run.stderr[-2000:]
    assert json.loads(out.read_text())["steps"] == 50
