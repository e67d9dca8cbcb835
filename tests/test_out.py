"""`gradlang run --out R.json|R.npz` and `--data D.csv`, value by value: parameters equal to the
API's fit() at the same seed, bit for bit; reports and the objective equal to numpy's recomputation
at the written parameters; the history's steps; the csv's columns mapped to declarations as the
README says (1-D data by name; a matrix from NAME0, NAME1, ... or NAME_0, ... in numeric order,
else every column no other declaration claims), against numpy's own reading of the file."""

import json

import numpy as np
import pytest

import gradlang
from gradlang.cli import main

PROGRAM = """# a regression with a positive scale and a vector report
const lam = 0.01
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
param b: real = 0
param s: positive = 1
let r = X @ w + b - y
minimize mean(r^2) / (2 * s^2) + log(s) + lam * sumsq(w)
report mse = mean(r^2)
report wneg = -w
report top = max(abs(w))
solve { optimizer = adam(lr = 0.05); steps = 300; log_every = 60 }
"""

STEPS, SEED = 240, 3


def numpy_values(X, y, p):
    r = X @ p["w"] + p["b"] - y
    objective = np.mean(r**2) / (2 * p["s"] ** 2) + np.log(p["s"]) + 0.01 * np.sum(p["w"] ** 2)
    return objective, {"mse": np.mean(r**2), "wneg": -p["w"], "top": np.max(np.abs(p["w"]))}


@pytest.fixture
def setup(tmp_path):
    path = tmp_path / "reg.grad"
    path.write_text(PROGRAM)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(80, 12))
    y = X @ np.linspace(-1, 1, 12) + 0.3 + 0.5 * rng.normal(size=80)
    np.savez(tmp_path / "reg.npz", X=X, y=y)
    return path, X, y


def run(path, data, out, *extra):
    assert main(["run", str(path), "--data", str(data), "--out", str(out), "--quiet", "--seed", str(SEED),
                 "--steps", str(STEPS), *extra]) == 0


def test_json_and_npz_values(setup, tmp_path):
    path, X, y = setup
    run(path, tmp_path / "reg.npz", tmp_path / "r.json")
    run(path, tmp_path / "reg.npz", tmp_path / "r.npz")
    r = json.loads((tmp_path / "r.json").read_text())
    z = dict(np.load(tmp_path / "r.npz"))
    fit = gradlang.compile(str(path)).fit(data={"X": X, "y": y}, steps=STEPS, seed=SEED)

    # parameters: the API's, bit for bit (json floats are the float32 values, exactly)
    assert set(r["params"]) == {"w", "b", "s"}
    for name in ("w", "b", "s"):
        api = np.asarray(fit.params[name])
        assert np.array_equal(np.asarray(r["params"][name], np.float32), api), name
        assert np.array_equal(z[f"params/{name}"], api) and z[f"params/{name}"].dtype == api.dtype, name
    assert r["params"]["s"] > 0 and np.asarray(r["params"]["w"]).shape == (12,)

    # the objective and reports, recomputed with numpy at the written parameters
    p = {k: np.asarray(v, np.float64) for k, v in r["params"].items()}
    objective, reports = numpy_values(X, y, p)
    assert r["objective"] == pytest.approx(objective, rel=1e-5)
    assert r["objectives"] == {"objective": r["objective"]}
    assert float(z["objective"]) == pytest.approx(objective, rel=1e-5)
    assert set(r["reports"]) == set(reports) == {k.split("/", 1)[1] for k in z if k.startswith("reports/")}
    for name, value in reports.items():
        np.testing.assert_allclose(r["reports"][name], value, rtol=1e-5, atol=1e-7, err_msg=name)
        np.testing.assert_allclose(z[f"reports/{name}"], value, rtol=1e-5, atol=1e-7, err_msg=name)
    assert np.asarray(r["reports"]["wneg"]).shape == (12,)

    # history: a point every log_every = 60 steps, the last one the final objective's neighbourhood
    assert r["history"]["step"] == [60, 120, 180, 240] and list(z["history/step"]) == [60, 120, 180, 240]
    assert len(r["history"]["objective"]) == 4
    np.testing.assert_allclose(z["history/objective"], r["history"]["objective"], rtol=1e-6)
    assert r["history"]["objective"][-1] == pytest.approx(objective, rel=1e-5)  # deterministic, full batch
    assert np.all(np.diff(r["history"]["objective"]) < 0)                        # Adam from 0 goes down here
    assert r["steps"] == STEPS and r["seed"] == SEED and int(z["steps"]) == STEPS


def write_csv(path, header, columns):
    with open(path, "w") as f:
        f.write(",".join(header) + "\n")
        f.writelines(",".join(repr(float(v)) for v in row) + "\n" for row in np.stack(columns, axis=1))


def params_from(path, data, out):
    run(path, data, out)
    return {k: np.asarray(v) for k, v in json.loads(out.read_text())["params"].items()}


@pytest.mark.parametrize("layout", ["X0", "X_0", "unclaimed"])
def test_csv_column_mapping(setup, tmp_path, layout):
    """Columns written in a scrambled order (y in the middle, X10 before X2); the run on the csv
    equals the run on the arrays numpy reads from it, mapped by the rule, bit for bit."""
    path, X, y = setup
    order = [5, 11, 0, 10, 2, 7, 1, 9, 3, 6, 4, 8]
    prefix = {"X0": "X", "X_0": "X_", "unclaimed": "c"}[layout]
    header = [f"{prefix}{j}" for j in order]
    header.insert(4, "y")
    columns = [X[:, j] for j in order]
    columns.insert(4, y)
    write_csv(tmp_path / "d.csv", header, columns)

    table = np.genfromtxt(tmp_path / "d.csv", delimiter=",", names=True)
    names = table.dtype.names
    if layout == "unclaimed":  # all columns but y, in the file's order
        Xcsv = np.stack([table[n] for n in names if n != "y"], axis=1)
        assert np.array_equal(Xcsv, X[:, order])
    else:                      # by the number after the prefix: 0, 1, ..., 11 (not 0, 1, 10, 11, 2, ...)
        Xcsv = np.stack([table[f"{prefix}{j}"] for j in range(12)], axis=1)
        assert np.array_equal(Xcsv, X)
    np.savez(tmp_path / "ref.npz", X=Xcsv, y=table["y"])

    got = params_from(path, tmp_path / "d.csv", tmp_path / "csv.json")
    want = params_from(path, tmp_path / "ref.npz", tmp_path / "ref.json")
    for name in want:
        assert np.array_equal(got[name], want[name]), name
    if layout == "unclaimed":  # w is in the csv's column order
        reference = params_from(path, tmp_path / "reg.npz", tmp_path / "orig.json")
        np.testing.assert_allclose(got["w"], reference["w"][order], rtol=1e-4, atol=1e-5)


def test_csv_y_by_name_not_position(setup, tmp_path):
    """A 1-D declaration takes its column by name wherever it is; a wrong choice changes the fit."""
    path, X, y = setup
    write_csv(tmp_path / "d.csv", ["y"] + [f"X{j}" for j in range(12)], [y] + [X[:, j] for j in range(12)])
    got = params_from(path, tmp_path / "d.csv", tmp_path / "csv.json")
    want = params_from(path, tmp_path / "reg.npz", tmp_path / "npz.json")
    for name in want:
        np.testing.assert_allclose(got[name], want[name], rtol=1e-5, atol=1e-6, err_msg=name)
