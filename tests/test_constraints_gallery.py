"""The constrained gallery examples (issue 12, item 5) against CVXPY's solutions of the same convex
problems, each run as written (the example's own solve block) in float32.

Tolerances: objectives within 1e-4 relative (the fair classifier's: 1e-3), weights within 2e-3
absolute where the problem is well conditioned (the portfolio), the largest violation below 1e-4
(the fair classifier's gap within 1e-3 of its bound), and each example's binding constraints
binding at CVXPY's answer, so every test exercises an active constraint."""

import cvxpy as cp
import numpy as np
import pytest

import gradlang

from .conftest import ROOT

DATA = ROOT / "examples/data"


def _fit(name):
    return gradlang.compile(ROOT / f"examples/{name}.grad").fit()


def test_portfolio_matches_cvxpy():
    X = np.load(DATA / "diabetes.npz")["X"]
    S = X.T @ X
    w = cp.Variable(X.shape[1])
    problem = cp.Problem(cp.Minimize(cp.quad_form(w, S)), [cp.sum(w) == 1, w >= 0, w <= 0.2])
    problem.solve()
    assert np.sum(w.value > 0.2 - 1e-6) >= 2 and np.sum(w.value < 1e-6) >= 1  # cap and floor bind
    r = _fit("portfolio")
    assert r.objective == pytest.approx(problem.value, rel=1e-4)
    np.testing.assert_allclose(r.params["w"], w.value, atol=2e-3)
    assert max(c["violation"] for c in r.constraints.values()) < 1e-4
    assert r.constraints["long_only"]["violation"] == 0  # projected: exactly feasible
    assert min(r.params["w"]) >= 0


def test_fair_classifier_matches_cvxpy():
    d = np.load(DATA / "breast_cancer.npz")
    X, y = d["X"], d["y"]
    g = (X[:, 1] > 0).astype(float)
    lam, gap_max = 0.001, 2.0
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    z = X @ w + b
    gap = g @ z / g.sum() - (1 - g) @ z / (1 - g).sum()
    problem = cp.Problem(cp.Minimize(cp.sum(cp.logistic(z) - cp.multiply(y, z)) / len(y) + lam * cp.sum_squares(w)),
                         [gap <= gap_max, gap >= -gap_max])
    problem.solve()
    assert gap.value == pytest.approx(-gap_max, abs=1e-6)  # the lower bound binds at the optimum
    r = _fit("fair_classifier")
    assert r.objective == pytest.approx(problem.value, rel=1e-3)
    assert r.reports["logit_gap"] >= -gap_max - 1e-3 and r.reports["logit_gap"] <= gap_max + 1e-3
    assert max(c["violation"] for c in r.constraints.values()) < 1e-3
    assert r.constraints["parity_lo"]["multiplier"] > 0


G = np.array([[0, 0, 0, 0, 1, 1, 1, 1, 1, 1], [0, 0, 0, 0, -1, 1, 0, 0, 0, 0],
              [0, 0, -1, 1, 0, 0, 0, 0, 0, 0], [0, 0, -1, 0, 0, 0, 0, 0, 1, 0]], dtype=float)
H = np.array([5.0, 6.0, 0.0, 0.0])


def test_linear_inequalities_match_cvxpy():
    d = np.load(DATA / "diabetes.npz")
    X, y = d["X"], d["y_std"]
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    problem = cp.Problem(cp.Minimize(cp.sum_squares(X @ w + b - y) / len(y)), [G @ w <= H])
    problem.solve()
    np.testing.assert_array_equal(G @ w.value > H - 1e-6, [True, False, False, True])  # rows 1, 4 bind
    r = _fit("linear_inequalities")
    assert r.objective == pytest.approx(problem.value, rel=1e-4)
    assert r.constraints["rows"]["violation"] < 1e-4
    assert np.all(G @ r.params["w"] <= H + 1e-4)
