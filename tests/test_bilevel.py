"""Bilevel programs (lower blocks) against closed forms.

* The S008 ridge problem (../shared/SEEDS.md, §S008): lower ``y*(λ) = argmin ½‖Ay − b‖² + (λ/2)‖y‖²``,
  upper ``½‖A_v y − b_v‖²`` with A = [[1,0],[0,2],[1,1]], b = [1,2,3], A_v = [[1,1]], b_v = [2], at
  λ = 0.5: the hypergradient dφ/dλ is −0.1270100 (closed form, finite differences agree to 2e-7).
  implicit matches it to 1e-5 with each linear solver; unroll's error shrinks geometrically with
  the steps differentiated; penalty's error is linear in σ (the S008 figures: 6.06e-3 at σ = 0.1,
  6.33e-4 at σ = 0.01), value_gap's like 1/γ.
* Tuning a ridge penalty on held-out rows of the diabetes table: the optimum found with penalty
  equals the grid-search optimum over log λ with the closed-form inner solution within 0.15 (with
  implicit: the gallery's ridge_tuning_diabetes.grad, tests/test_bilevel_methods.py, within 0.05).
* Checker and pass: ``--emit ir:bilevel_to_hypergrad`` shows the inner solve and the method with
  its defaults; wrong names and arguments are located errors.

Everything runs in float32, deterministic (no sampling): tolerances are float32 round-off bounds.
"""

from __future__ import annotations

import json
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlang
from gradlang.backend.solvers.gradient import direction_of
from gradlang.cli import main
from gradlang.errors import GradlangError

EXACT = -0.1270100  # S008: dφ/dλ at λ = 0.5
S008 = {"A": np.array([[1.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), "b": np.array([1.0, 2.0, 3.0]),
        "Av": np.array([[1.0, 1.0]]), "bv": np.array([2.0])}

RIDGE = """
data A: real[3, 2]; data b: real[3]; data Av: real[1, 2]; data bv: real[1]
param lam: real = 0.5
lower inner {{
  param y: real[2] = 0
  minimize 0.5 * sumsq(A @ y - b) + 0.5 * lam * sumsq(y)
  solve {{ optimizer = sgd(lr = 0.15); steps = {steps} }}
}}
minimize 0.5 * sumsq(Av @ inner.y - bv)
solve {{ optimizer = sgd(lr = 0.01); steps = 1; bilevel = {method} }}
"""


def hypergradient(method: str, steps: int = 200, upper_steps: int = 1) -> float:
    """The direction's dφ/dλ at λ = 0.5 after ``upper_steps`` calls (the lower solution
    warm-started between them, λ held fixed)."""
    prog = gradlang.compile(RIDGE.format(method=method, steps=steps))
    model, arrays = prog.bind(S008)
    direction = direction_of(model)
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    u = model.init(jax.random.PRNGKey(0), data)
    est = direction.init(u, data, {})
    step = jax.jit(lambda est: direction(u, data, None, est))
    for _ in range(upper_steps):
        _, _, g, est = step(est)
    return float(g["lam"])


@pytest.mark.parametrize("solver", ["cg", "neumann", "auto"])
def test_implicit_equals_the_closed_form_hypergradient(solver):
    assert abs(hypergradient(f"implicit(solver = {solver}, iters = 60)") - EXACT) < 1e-5


def test_unroll_converges_to_the_implicit_hypergradient_as_steps_grow():
    """Differentiating the last K of 200 gradient steps (lr 0.15; contraction 0.67 a step): the error
    falls about like 0.67^K, and at K = 60 it is within 1e-5."""
    errors = [abs(hypergradient(f"unroll(steps = {k})") - EXACT) for k in (2, 5, 10, 20, 60)]
    assert all(b < 0.7 * a for a, b in zip(errors[:3], errors[1:4])), errors
    assert errors[0] > 1e-2 and errors[-1] < 1e-5, errors


def test_penalty_error_is_linear_in_sigma():
    """S008: the penalty gradient with (nearly) exact inner solves is −0.120952 at σ = 0.1 and
    −0.126377 at σ = 0.01; the error over σ is constant (6.06e-2 ± 5%)."""
    sigmas = (0.1, 0.03, 0.01)
    grads = [hypergradient(f"penalty(sigma = {s})", steps=300) for s in sigmas]
    assert abs(grads[0] - (-0.120952)) < 2e-5 and abs(grads[2] - (-0.126377)) < 2e-5, grads
    slopes = [abs(g - EXACT) / s for g, s in zip(grads, sigmas)]
    assert max(slopes) / min(slopes) < 1.1 and 0.055 < slopes[-1] < 0.066, slopes


def test_value_gap_error_shrinks_like_one_over_gamma():
    """V-PBGD tracks y with one lower step per upper step: after 300 upper steps at fixed λ it is
    the penalty gradient with σ = 1/γ."""
    grads = [hypergradient(f"value_gap(gamma = {g})", upper_steps=300) for g in (10, 100)]
    errors = [abs(g - EXACT) for g in grads]
    assert abs(errors[0] - 6.06e-3) < 3e-4 and abs(errors[1] - 6.33e-4) < 1e-4, errors


# ---- tuning a ridge penalty on held-out data ----------------------------------------------------
TUNE = """
data Xtr: real[N, D]; data ytr: real[N]; data Xval: real[M, D]; data yval: real[M]
param log_lam: real = 1.5
lower fit {{
  param w: real[D] = 0
  minimize mean((Xtr @ w - ytr)^2) + exp(log_lam) * sumsq(w)
  solve {{ optimizer = sgd(lr = 0.05); steps = 200 }}
}}
minimize mean((Xval @ fit.w - yval)^2)
solve {{ optimizer = adam(lr = 0.05); steps = 300; bilevel = {method} }}
"""


def diabetes_split():
    """30 training rows, the other 412 held out (standardised features, standardised target)."""
    d = np.load(Path(__file__).parent.parent / "examples" / "data" / "diabetes.npz")
    X, y = d["X"], d["y_std"]
    X = (X - X.mean(0)) / X.std(0)
    idx = np.random.default_rng(1).permutation(len(y))
    tr, va = idx[:30], idx[30:]
    return {"Xtr": X[tr], "ytr": y[tr], "Xval": X[va], "yval": y[va]}


def grid_optimum(data) -> float:
    Xt, yt, Xv, yv = data["Xtr"], data["ytr"], data["Xval"], data["yval"]
    n, dim = Xt.shape

    def val(log_lam):
        w = np.linalg.solve(Xt.T @ Xt / n + np.exp(log_lam) * np.eye(dim), Xt.T @ yt / n)
        return np.mean((Xv @ w - yv) ** 2)

    grid = np.linspace(-6, 4, 2001)
    return float(grid[np.argmin([val(t) for t in grid])])


# implicit on the same task: the gallery's ridge_tuning_diabetes (tests/test_bilevel_methods.py)
@pytest.mark.parametrize("method", ["penalty(sigma = 0.01)"])
def test_tuned_ridge_penalty_equals_the_grid_search_optimum(method):
    data = diabetes_split()
    best = grid_optimum(data)  # about -0.17, from the start at 1.5
    result = gradlang.compile(TUNE.format(method=method)).fit(data=data)
    assert abs(result.params["log_lam"] - best) < 0.15, (result.params["log_lam"], best)
    Xt, yt = data["Xtr"], data["ytr"]
    lam = float(np.exp(result.params["log_lam"]))
    w = np.linalg.solve(Xt.T @ Xt / 30 + lam * np.eye(10), Xt.T @ yt / 30)
    assert np.max(np.abs(result.params["fit.w"] - w)) < 1e-3  # the reported lower solution


# ---- the program as written: checker, pass, command line ----------------------------------------
def test_emit_shows_the_inner_solve_and_the_method_with_its_defaults(tmp_path, capsys):
    path = tmp_path / "ridge.grad"
    path.write_text(RIDGE.format(method="implicit(solver = cg)", steps=50))
    assert main(["compile", str(path), "--emit", "ir:bilevel_to_hypergrad"]) == 0
    out = capsys.readouterr().out
    assert "param inner.y: real[2] in real = 0" in out
    assert "inner solve: optimizer=sgd(lr=0.15) steps=50" in out
    assert "hypergradient implicit(solver=cg, iters=50, tol=1e-06, direct=500, power=20, tol_active=0.0001)" in out
    path.write_text(RIDGE.format(method="implicit", steps=50).replace("; bilevel = implicit", ""))
    assert main(["compile", str(path), "--emit", "ir:bilevel_to_hypergrad"]) == 0
    assert "hypergradient implicit(solver=auto, iters=50, tol=1e-06, direct=500, power=20, tol_active=0.0001)" \
        "  # chosen" \
        in capsys.readouterr().out


def test_the_result_and_out_report_the_lower_solution(tmp_path):
    path, out = tmp_path / "ridge.grad", tmp_path / "r.json"
    path.write_text(RIDGE.format(method="implicit", steps=200))
    np.savez(tmp_path / "d.npz", **S008)
    assert main(["run", str(path), "--data", str(tmp_path / "d.npz"), "--quiet", "--out", str(out)]) == 0
    r = json.loads(out.read_text())
    assert np.allclose(r["params"]["inner.y"], [20 / 17, 18 / 17], atol=1e-4)  # y*(0.5), S008
    assert abs(r["objective"] - 8 / 289) < 1e-4


@pytest.mark.parametrize("method, line, col, message", [
    ("implict", 10, 58, "unknown bilevel method 'implict'"),
    ("implicit(solver = lu)", 10, 58, "wrong arguments to bilevel method implicit: solver must be one of"),
    ("penalty(sigma = -1)", 10, 58, "wrong arguments to bilevel method penalty: sigma must be a positive"),
    ("unroll(step = 3)", 10, 58, "wrong arguments to bilevel method unroll"),
])
def test_a_wrong_method_is_a_located_error(method, line, col, message):
    with pytest.raises(GradlangError) as err:
        gradlang.compile(RIDGE.format(method=method, steps=10))
    d = err.value.diagnostics[0]
    assert message in d.message and (d.span.line, d.span.col) == (line, col), (d.message, d.span)


@pytest.mark.parametrize("text, message", [
    ("minimize 0.5 * sumsq(Av @ inner.z - bv)", "lower inner has no param 'z'"),
    ("minimize 0.5 * sumsq(Av @ inner - bv)", "'inner' is a lower block, not a value"),
    ("minimize 0.5 * sumsq(Av @ y - bv)", "unknown name 'y'"),
])
def test_names_of_lower_blocks_are_checked(text, message):
    src = RIDGE.format(method="implicit", steps=10).replace("minimize 0.5 * sumsq(Av @ inner.y - bv)", text)
    with pytest.raises(GradlangError) as err:
        gradlang.compile(src)
    assert message in err.value.diagnostics[0].message
