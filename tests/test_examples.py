"""Every gallery example runs; the convex ones reach the optimum computed independently
(least squares by numpy's lstsq, ridge by its closed form, logistic by scipy's L-BFGS-B)."""

from pathlib import Path

import numpy as np
import pytest
from scipy.optimize import minimize

import gradlang

from .conftest import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.grad"))


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs(path: Path):
    result = gradlang.compile(path).fit(steps=20)
    assert np.isfinite(result.objective)
    assert result.steps == 20
    assert all(np.all(np.isfinite(v)) for v in result.params.values())


def _diabetes():
    d = np.load(ROOT / "examples/data/diabetes.npz")
    return d["X"], d["y_std"]


def test_least_squares_example_reaches_lstsq_optimum():
    X, y = _diabetes()
    A = np.hstack([X, np.ones((len(X), 1))])
    coef, *_ = np.linalg.lstsq(A, y, rcond=None)
    best = np.mean((A @ coef - y) ** 2)
    result = gradlang.compile(ROOT / "examples/least_squares.grad").fit()
    assert abs(result.objective - best) / best < 1e-4


def test_least_squares_reaches_closed_form_parameters():
    """Relative parameter error below 1e-4 against the normal equations."""
    rng = np.random.default_rng(0)
    X = rng.normal(size=(300, 6))
    w_true = rng.normal(size=6)
    y = X @ w_true + 0.1 * rng.normal(size=300)
    w_star = np.linalg.solve(X.T @ X, X.T @ y)
    prog = gradlang.compile("""
data X: real[N, D]
data y: real[N]
param w: real[D] = 0
minimize mean((X @ w - y)^2)
solve { optimizer = adam(lr = 0.05); steps = 3000 }
""")
    w = prog.fit(data={"X": X, "y": y}).params["w"]
    assert np.linalg.norm(w - w_star) / np.linalg.norm(w_star) < 1e-4


def test_ridge_example_matches_closed_form():
    X, y = _diabetes()
    lam = 0.001
    n = len(X)
    Xc, yc = X - X.mean(0), y - y.mean()
    # objective: mean(0.5 r^2) + lam |w|^2, so (Xc'Xc / n + 2 lam I) w = Xc'yc / n
    w = np.linalg.solve(Xc.T @ Xc / n + 2 * lam * np.eye(X.shape[1]), Xc.T @ yc / n)
    b = y.mean() - X.mean(0) @ w
    best = np.mean(0.5 * (X @ w + b - y) ** 2) + lam * np.sum(w**2)
    result = gradlang.compile(ROOT / "examples/ridge.grad").fit(lam=lam)
    assert abs(result.objective - best) / best < 1e-4


def test_logistic_example_matches_scipy():
    d = np.load(ROOT / "examples/data/breast_cancer.npz")
    X, y = d["X"], d["y"]
    lam = 0.001

    def f(theta):
        z = X @ theta[:-1] + theta[-1]
        return np.mean(np.logaddexp(0, z) - y * z) + lam * np.sum(theta[:-1] ** 2)

    best = minimize(f, np.zeros(X.shape[1] + 1), method="L-BFGS-B", options={"gtol": 1e-10}).fun
    result = gradlang.compile(ROOT / "examples/logistic_regression.grad").fit()
    assert abs(result.objective - best) / best < 1e-4
    assert result.reports["accuracy"] > 0.98
