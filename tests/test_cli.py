"""The command line: exit codes, --out layout, --set, --data (npz and csv), emit stages, lists."""

import json
import subprocess
import sys

import numpy as np
import pytest

from gradlang.cli import main


PROGRAM = """# a tiny regression
const lam = 0.0
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
minimize mean((X @ w - y)^2) + lam * sumsq(w)
report fit = mean((X @ w - y)^2)
solve { optimizer = adam(lr = 0.1); steps = 200; log_every = 50 }
"""


@pytest.fixture
def program(tmp_path):
    path = tmp_path / "reg.grad"
    path.write_text(PROGRAM)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(50, 3))
    y = X @ np.array([1.0, -2.0, 0.5])
    np.savez(tmp_path / "reg.npz", X=X, y=y)
    with open(tmp_path / "reg.csv", "w") as f:
        f.write("X0,X1,X2,y\n" + "\n".join(",".join(map(str, [*row, t])) for row, t in zip(X, y)))
    return path


def test_run_writes_the_documented_json(program, tmp_path, capsys):
    out = tmp_path / "r.json"
    code = main(["run", str(program), "--data", str(tmp_path / "reg.npz"), "--out", str(out), "--quiet",
                 "--seed", "2", "--steps", "150"])
    assert code == 0
    r = json.loads(out.read_text())
    assert set(r) == {"objective", "objectives", "params", "reports", "constraints", "history", "steps",
                      "converged", "converged_at", "seed", "seconds"}
    assert r["steps"] == 150 and r["seed"] == 2 and r["converged"] is False and r["converged_at"] is None
    assert set(r["history"]) == {"step", "objective", "objectives"} and r["history"]["step"] == [50, 100, 150]
    assert r["history"]["objectives"] == {"objective": r["history"]["objective"]}
    assert r["objectives"] == {"objective": r["objective"]}
    assert len(r["params"]["w"]) == 3 and "fit" in r["reports"]
    assert r["constraints"] == {}


def test_csv_data_and_set(program, tmp_path):
    out = tmp_path / "r.json"
    assert main(["run", str(program), "--data", str(tmp_path / "reg.csv"), "--set", "lam=1.0",
                 "--out", str(out), "--quiet"]) == 0
    w = np.array(json.loads(out.read_text())["params"]["w"])
    assert np.linalg.norm(w) < np.linalg.norm([1.0, -2.0, 0.5]) * 0.9  # shrunk by the penalty


def test_npz_out(program, tmp_path):
    out = tmp_path / "r.npz"
    assert main(["run", str(program), "--data", str(tmp_path / "reg.npz"), "--out", str(out), "--quiet"]) == 0
    with np.load(out) as f:
        assert f["params/w"].shape == (3,)


def test_user_error_exit_code_and_rendering(tmp_path, capsys):
    bad = tmp_path / "bad.grad"
    bad.write_text("param w: real = 0\nminimize (w - 1)^2 + lamda\n")
    assert main(["check", str(bad)]) == 1
    err = capsys.readouterr().err
    assert f"{bad}:2:22: error: unknown name 'lamda'" in err
    assert "^^^^^" in err


def test_missing_data_is_a_user_error(program, capsys):
    assert main(["run", str(program), "--quiet"]) == 1
    assert "no data for 'X'" in capsys.readouterr().err


def test_unknown_const_in_set(program, tmp_path, capsys):
    assert main(["run", str(program), "--data", str(tmp_path / "reg.npz"), "--set", "lamb=1", "--quiet"]) == 1
    assert "did you mean 'lam'" in capsys.readouterr().err


@pytest.mark.parametrize("stage", ["ast", "ir", "ir:check", "ir:inline_functions", "ir:fold_constants", "jaxpr"])
def test_emit_stages(program, stage, capsys):
    assert main(["compile", str(program), "--emit", stage]) == 0
    out = capsys.readouterr().out
    assert out.strip()
    if stage == "jaxpr":
        assert "dot_general" in out
    if stage.startswith("ir"):
        assert "param w: real[D]" in out


def test_unknown_emit_stage(program, capsys):
    assert main(["compile", str(program), "--emit", "ir:inline"]) == 1
    assert "did you mean 'inline_functions'" in capsys.readouterr().err


@pytest.mark.parametrize("kind", ["optimizers", "schedules", "estimators", "families", "distributions", "builtins",
                                  "domains", "passes"])
def test_list(kind, capsys):
    assert main(["list", kind]) == 0
    assert len(capsys.readouterr().out.splitlines()) > 4


def test_examples_lists_the_gallery(capsys):
    assert main(["examples"]) == 0
    out = capsys.readouterr().out
    assert "least_squares" in out and "logistic_regression" in out


def test_console_script_help():
    out = subprocess.run([sys.executable, "-m", "gradlang.cli", "--help"], capture_output=True, text=True)
    assert out.returncode == 0
    for command in ("check", "run", "compile", "list", "examples"):
        assert command in out.stdout


def test_nan_run_writes_last_finite_state(tmp_path, capsys):
    path = tmp_path / "nan.grad"
    path.write_text("param w: real = 5\nminimize (w - 1)^2 + sqrt(w - 3)\n"
                    "solve { optimizer = sgd(lr = 0.125); steps = 50 }\n")
    out = tmp_path / "r.json"
    assert main(["run", str(path), "--out", str(out), "--quiet"]) == 1
    err = capsys.readouterr().err
    # w: 5 -> 4 -> 3.2 -> 2.5 (finite), then sqrt(2.5 - 3) is NaN at step 4
    assert "non-finite at step 4" in err and ":2:10" in err
    r = json.loads(out.read_text())
    assert r["steps"] == 3 and np.isfinite(r["params"]["w"])


