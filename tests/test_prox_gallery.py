"""The proximal gallery (issue 11, item 5): each example in examples/ that uses a prox term reaches
the optimum CVXPY finds for the same problem (float64, Clarabel at gaps of 1e-10), under each
applicable method (`proximal`, ISTA with backtracking, and `fista`; the splitting methods `admm` and
`pdhg` on lasso, NNLS, 1-D and 2-D TV, within the test budget — tests/test_prox_splitting.py has the
nuclear-norm completion, group lasso and fused lasso under them).
ADMM reports x, which meets its z = x copy (sparse, feasible) only to the residual's accuracy: its
zeros and bounds are checked to 1e-5, the others' exactly.

gradlang computes in float32, so the tolerances are float32 ones: the objective to a relative 1e-5
(1e-4 where stated) and the solution to the stated absolute tolerance. Each example runs with its
solve block replaced by `method = M; steps = S` (no `tol`, so the step count is the test's).
The nuclear-norm completion, an SDP for CVXPY, is solved by SCS at eps 1e-9 instead (see there)."""

import re

import cvxpy as cp
import numpy as np
import pytest

import gradlang

from .conftest import ROOT

EX = ROOT / "examples"
DATA = EX / "data"


def run(tmp_path, name, method, steps, **consts):
    """Fit examples/<name>.grad under `method` for `steps` steps (a copy beside a link to the data)."""
    text = (EX / f"{name}.grad").read_text()
    text, n = re.subn(r"^solve \{.*\}$", f"solve {{ method = {method}; steps = {steps} }}", text, flags=re.MULTILINE)
    assert n == 1
    if not (tmp_path / "data").exists():
        (tmp_path / "data").symlink_to(DATA)
    path = tmp_path / f"{name}.grad"
    path.write_text(text)
    return gradlang.compile(path).fit(**consts)


def clarabel(objective, constraints=()):
    problem = cp.Problem(cp.Minimize(objective), list(constraints))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10, tol_feas=1e-10)
    assert problem.status == cp.OPTIMAL
    return problem.value


def standardised(a):
    return (a - a.mean(0)) / a.std(0)


# -- 1. lasso on the diabetes data -------------------------------------------------------------

@pytest.mark.parametrize("method, steps", [("proximal", 3000), ("fista", 400), ("admm", 300), ("pdhg", 400)])
def test_lasso_diabetes_matches_cvxpy(tmp_path, method, steps):
    d = np.load(DATA / "diabetes.npz")
    X, y = standardised(d["X"]), d["y_std"]
    lam = 0.05
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    best = clarabel(0.5 * cp.sum_squares(X @ w + b - y) / len(y) + lam * cp.norm1(w))
    result = run(tmp_path, "lasso_diabetes", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(result.params["w"], w.value, atol=2e-4)
    np.testing.assert_allclose(result.params["b"], b.value, atol=1e-5)
    # the prox leaves exact zeros where CVXPY's weights are (numerically) zero
    zero = 1e-5 if method == "admm" else 0.0
    np.testing.assert_array_equal(np.abs(result.params["w"]) <= zero, np.abs(w.value) < 1e-6)


# -- 2. non-negative least squares on the diabetes data ------------------------------------------

@pytest.mark.parametrize("method, steps", [("proximal", 3000), ("fista", 400), ("admm", 200), ("pdhg", 400)])
def test_nnls_diabetes_matches_cvxpy(tmp_path, method, steps):
    d = np.load(DATA / "diabetes.npz")
    X, y = standardised(d["X"]), d["y_std"]
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    best = clarabel(0.5 * cp.sum_squares(X @ w + b - y) / len(y), [w >= 0])
    result = run(tmp_path, "nnls_diabetes", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(result.params["w"], w.value, atol=2e-4)
    zero = 1e-5 if method == "admm" else 0.0
    assert result.params["w"].min() >= -zero  # a projection: exactly feasible
    np.testing.assert_array_equal(np.abs(result.params["w"]) <= zero, w.value < 1e-6)


# -- 3. total-variation denoising of the Kilpisjarvi temperatures ---------------------------------

@pytest.mark.parametrize("method, steps", [("proximal", 50), ("fista", 50), ("admm", 100), ("pdhg", 50)])
def test_tv_kilpisjarvi_matches_cvxpy(tmp_path, method, steps):
    y = np.load(DATA / "kilpisjarvi_mod.npz")["y"]
    lam = 3.0
    x = cp.Variable(len(y))
    best = clarabel(0.5 * cp.sum_squares(x - y) + lam * cp.norm1(cp.diff(x)))
    result = run(tmp_path, "tv_kilpisjarvi", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-6)
    np.testing.assert_allclose(result.params["x"], x.value, atol=1e-4)
    # piecewise constant with the same jumps (the largest at index 36, 1988)
    jumps = np.flatnonzero(np.abs(np.diff(result.params["x"])) > 1e-3)
    np.testing.assert_array_equal(jumps, np.flatnonzero(np.abs(np.diff(x.value)) > 1e-3))
    assert np.argmax(np.abs(np.diff(result.params["x"]))) == 35


def logistic_loss(X, y, w, b):
    z = X @ w + b
    return cp.sum(cp.logistic(z) - cp.multiply(y, z)) / len(y)


# -- 4. group lasso: logistic regression on the breast-cancer data, a group per measurement -------

@pytest.mark.parametrize("method, steps", [("proximal", 6000), ("fista", 1500)])
def test_group_lasso_cancer_matches_cvxpy(tmp_path, method, steps):
    d = np.load(DATA / "breast_cancer.npz")
    X, y = d["X"], d["y"]
    lam = 0.02
    w, b = cp.Variable(30), cp.Variable()
    groups = [[i, i + 10, i + 20] for i in range(10)]
    best = clarabel(logistic_loss(X, y, w, b) + lam * sum(cp.norm2(w[g]) for g in groups))
    result = run(tmp_path, "group_lasso_cancer", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-5)
    # the objective is flat along correlated features (concave points' mean and worst value, columns
    # 7 and 27): a float32 objective gap of 1e-6 leaves weights 2e-3 apart
    np.testing.assert_allclose(result.params["w"], w.value, atol=3e-3)
    # whole groups are dropped, exactly, and the same ones as CVXPY's
    kept = np.abs(result.params["w"]).reshape(3, 10).sum(0) > 0
    np.testing.assert_array_equal(kept, np.linalg.norm(w.value.reshape(3, 10), axis=0) > 1e-6)
    assert kept.sum() == 6


# -- 5. sparse logistic regression on the breast-cancer data --------------------------------------

@pytest.mark.parametrize("method, steps", [("proximal", 12000), ("fista", 1500)])
def test_sparse_logistic_cancer_matches_cvxpy(tmp_path, method, steps):
    d = np.load(DATA / "breast_cancer.npz")
    X, y = d["X"], d["y"]
    lam = 0.02
    w, b = cp.Variable(X.shape[1]), cp.Variable()
    best = clarabel(logistic_loss(X, y, w, b) + lam * cp.norm1(w))
    result = run(tmp_path, "sparse_logistic_cancer", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(result.params["w"], w.value, atol=3e-3)   # flat along correlated features
    np.testing.assert_array_equal(result.params["w"] == 0, np.abs(w.value) < 1e-6)
    assert (result.params["w"] != 0).sum() == 7


# -- 6. low-rank matrix completion with the nuclear norm (40 digit images, half the pixels hidden) --

@pytest.mark.parametrize("method, steps", [("proximal", 1000), ("fista", 300)])
def test_completion_digits_matches_cvxpy(tmp_path, method, steps):
    d = np.load(DATA / "digits_completion.npz")
    M_obs, mask = d["M_obs"], d["mask"]
    np.testing.assert_array_equal(d["M"][:, :], np.load(DATA / "digits.npz")["X"][:40])   # the real matrix
    lam = 1.0
    Z = cp.Variable(M_obs.shape)
    # an SDP: SCS at eps 1e-9 takes 0.3 s and agrees with Clarabel at gaps of 1e-10 (30 s here) to 1e-11
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(cp.multiply(mask, Z - M_obs)) + lam * cp.normNuc(Z)))
    problem.solve(solver=cp.SCS, eps=1e-9, max_iters=20000)
    assert problem.status == cp.OPTIMAL
    best = problem.value
    result = run(tmp_path, "completion_digits", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(result.params["Z"], Z.value, atol=1e-3)
    s = np.linalg.svd(result.params["Z"], compute_uv=False)
    assert (s > 1e-3).sum() == (np.linalg.svd(Z.value, compute_uv=False) > 1e-3).sum() == 13


# -- 7. anisotropic 2-D total-variation denoising of a digit (terms through linear maps) -----------

@pytest.mark.parametrize("method, steps", [("admm", 150), ("pdhg", 300)])
def test_tv2d_digit_matches_cvxpy(tmp_path, method, steps):
    """norm1(D @ Z) + norm1(Z @ D'): two dual terms (the prox of their sum is not known), left and
    right linear maps; the ADMM x-update is a Cholesky solve (the smooth part is a quadratic)."""
    text = (EX / "tv2d_digit.grad").read_text()
    split = gradlang.compile(text.replace('"data/', f'"{DATA}/')).ir.split
    assert [(t.fn, t.linear_side) for t in split.dual] == [("norm1", "left"), ("norm1", "right")]
    if method == "admm":
        assert dict(split.options)["x_update"] == "cholesky"
    clean = np.load(DATA / "digits.npz")["X"][1000].reshape(8, 8)
    noisy = clean + 3 * np.cos(np.pi * (np.arange(8)[:, None] + np.arange(8)[None, :]))
    D = np.eye(8)[1:] - np.eye(8)[:-1]
    Z = cp.Variable((8, 8))
    best = clarabel(0.5 * cp.sum_squares(Z - noisy) + 1.5 * cp.sum(cp.abs(D @ Z)) + 1.5 * cp.sum(cp.abs(Z @ D.T)))
    result = run(tmp_path, "tv2d_digit", method, steps)
    assert result.objective == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(result.params["Z"], Z.value, atol=1e-4)
    assert float(result.reports["error_noisy"]) == pytest.approx(3.0)
    assert float(result.reports["error_denoised"]) < 0.4   # the +-3 checkerboard mostly removed
