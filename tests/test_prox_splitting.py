"""The splitting methods, admm and pdhg (issue 11, item 4): terms c * f(K @ p) against CVXPY (float64,
Clarabel at gaps of 1e-10), the decisions split_prox writes, and each method's `tol` replayed on its
own measure (ADMM's primal and dual residuals, Boyd et al. 2011 sec. 3.3.1; PDHG's, Goldstein, Esser
& Baraniuk 2013) from the iterates, recomputed here in float64.

gradlang computes in float32: objectives to a relative 1e-5, solutions to an absolute 1e-4."""

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlang
from gradlang.backend.solvers import make_solver

GENERALIZED_LASSO = """
data A: real[M, N]
data b: real[M]
data D: real[K, N]
param x: real[N] = 0
minimize 0.5 * mean((A @ x - b)^2) + 0.1 * norm1(D @ x)
solve {{ method = {method}; steps = {steps}{extra} }}
"""


def _generalized_lasso():
    """A piecewise-constant x (4 pieces of 5) seen through a random A; D the first differences."""
    rng = np.random.default_rng(3)
    m, n = 40, 20
    A = rng.normal(size=(m, n))
    b = A @ np.repeat(rng.normal(size=4), 5) + 0.3 * rng.normal(size=m)
    D = np.eye(n)[1:] - np.eye(n)[:-1]
    x = cp.Variable(n)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(A @ x - b) / m + 0.1 * cp.norm1(D @ x)))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    data = {"A": A.astype(np.float32), "b": b.astype(np.float32), "D": D.astype(np.float32)}
    return data, (A, b, D), problem.value, x.value


def _solve(text, data, steps):
    """The solver of ``text`` stepped ``steps`` times in one jitted loop (what a fit runs, without the
    runtime's chunks and logs, whose compilation the end-to-end tests pay once): (params, objective)."""
    program = gradlang.compile(text)
    model, arrays = program.bind(data)
    solver = make_solver(model, None, program.ir.solve)
    u0 = model.init(jax.random.PRNGKey(0), arrays)

    @jax.jit
    def run():
        state = jax.lax.fori_loop(0, steps, lambda t, s: solver.step(s, arrays, t)[0], solver.init(u0, arrays))
        u = solver.params(state)
        return model.constrain(u), model.objective_values(u, arrays)[0]

    params, objective = run()
    return program, {k: np.asarray(v) for k, v in params.items()}, float(objective)


@pytest.mark.parametrize("method, steps", [("admm", 200), ("pdhg", 300)])
def test_generalized_lasso_through_a_difference_matrix_matches_cvxpy(method, steps):
    """(End to end, through a fit: admm and pdhg in test_prox_gallery.py.)"""
    data, _, best, x_best = _generalized_lasso()
    program, params, objective = _solve(GENERALIZED_LASSO.format(method=method, steps=steps, extra=""), data, steps)
    split = program.ir.split
    assert [(t.fn, t.param, t.linear.name) for t in split.dual] == [("norm1", "x", "D")]
    assert split.terms == ()
    assert dict(split.options) == ({"rho": 1.0, "rho_update": "balance", "x_update": "cholesky"}
                                   if method == "admm" else {}) | {"compile": "fast"}
    assert objective == pytest.approx(best, rel=1e-5)
    np.testing.assert_allclose(params["x"], x_best, atol=1e-4)
    # fused: the same 4 pieces (3 jumps) as CVXPY's solution
    jumps = np.flatnonzero(np.abs(np.diff(params["x"])) > 1e-3)
    np.testing.assert_array_equal(jumps, np.flatnonzero(np.abs(np.diff(x_best)) > 1e-3))


def _stepper(method, tol, data):
    program = gradlang.compile(GENERALIZED_LASSO.format(method=method, steps=1000, extra=f"; tol = {tol}"))
    model, arrays = program.bind(data)
    solver = make_solver(model, None, program.ir.solve)
    state = solver.init(model.init(jax.random.PRNGKey(0), arrays), arrays, None)
    step = jax.jit(lambda s, t: solver.step(s, arrays, t)[0])
    return solver, state, step


def test_admm_tol_stops_on_its_primal_and_dual_residuals():
    """||r|| = ||D x - z||, ||s|| = rho ||D'(z - z_prev)||, stopping at the first step where
    ||r|| <= sqrt(p) tol/10 + tol max(||Dx||, ||z||) and ||s|| <= sqrt(n) tol/10 + tol ||D'y||
    (y = rho w, the unscaled dual)."""
    tol = 1e-4
    data, (_, _, D), _, x_best = _generalized_lasso()
    solver, state, step = _stepper("admm", tol, data)
    p, n = D.shape
    for t in range(1000):
        new = step(state, jnp.int32(t))
        x, z, z_prev = (np.asarray(a, np.float64) for a in (new.u["x"], new.z[0], state.z[0]))
        rho = float(state.rho)  # the step's; balancing may change it after, keeping y = rho w
        y = float(new.rho) * np.asarray(new.w[0], np.float64)
        r, s = np.linalg.norm(D @ x - z), rho * np.linalg.norm(D.T @ (z - z_prev))
        np.testing.assert_allclose(np.asarray(new.residuals), [r, s], rtol=1e-3, atol=1e-7)
        holds = (r <= np.sqrt(p) * tol / 10 + tol * max(np.linalg.norm(D @ x), np.linalg.norm(z))
                 and s <= np.sqrt(n) * tol / 10 + tol * np.linalg.norm(D.T @ y))
        assert bool(solver.terminate(new)) == holds, t
        state = new
        if holds:
            break
    assert 20 < t < 200  # it stopped, neither at once nor late
    np.testing.assert_allclose(state.u["x"], x_best, atol=1e-3)


def test_pdhg_tol_stops_on_its_primal_and_dual_residuals():
    """p = (x - x+)/tau - D'(y - y+) - (grad f(x) - grad f(x+)), d = (y - y+)/sigma + D(x+ - x),
    stopping at the first step where max(||p||, ||d||) <= tol times its value at the first step."""
    tol = 1e-4
    data, (A, b, D), _, x_best = _generalized_lasso()
    solver, state, step = _stepper("pdhg", tol, data)
    tau, sigma = float(state.tau), float(state.sigma)
    # the steps satisfy Condat's condition with the true norms: 1/tau - sigma ||D||^2 > L/2
    L = np.linalg.eigvalsh(A.T @ A / len(b)).max()
    assert 1 / tau - sigma * np.linalg.norm(D, 2) ** 2 > L / 2

    def grad(x):
        return A.T @ (A @ x - b) / len(b)

    first = None
    for t in range(1000):
        new = step(state, jnp.int32(t))
        x0, x1, y0, y1 = (np.asarray(a, np.float64) for a in (state.u["x"], new.u["x"], state.y[0], new.y[0]))
        p = (x0 - x1) / tau - D.T @ (y0 - y1) - (grad(x0) - grad(x1))
        d = (y0 - y1) / sigma + D @ (x1 - x0)
        size = max(np.linalg.norm(p), np.linalg.norm(d))
        first = size if first is None else first
        holds = size <= tol * first
        assert bool(solver.terminate(new)) == holds, t
        state = new
        if holds:
            break
    assert 20 < t < 300
    np.testing.assert_allclose(state.u["x"], x_best, atol=1e-3)


@pytest.mark.parametrize("method, steps", [("admm", 150), ("pdhg", 300)])
def test_group_lasso_least_squares_matches_cvxpy(method, steps):
    """admm: group_norm(w) a dual term with K = I (z-update by group soft-thresholding, x-update by
    conjugate gradients); pdhg: a prox on the parameter itself is a primal prox, a proximal gradient
    step.  (proximal and fista: the logistic group lasso in test_prox_gallery.py.)"""
    rng = np.random.default_rng(5)
    X = rng.normal(size=(50, 12))
    y = X @ np.repeat([1.5, 0.0, -1.0, 0.0], 3) + 0.5 * rng.normal(size=50)
    text = ("data X: real[N, 12]\ndata y: real[N]\nconst groups = repeat(arange(4), 3)\nparam w: real[12] = 0\n"
            "minimize 0.5 * mean((X @ w - y)^2) + 0.3 * group_norm(w, groups)\n"
            f"solve {{ method = {method}; steps = {steps} }}")
    _, params, objective = _solve(text, {"X": X.astype(np.float32), "y": y.astype(np.float32)}, steps)
    w = cp.Variable(12)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(X @ w - y) / 50
                                     + 0.3 * sum(cp.norm2(w[3 * g:3 * g + 3]) for g in range(4))))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    assert objective == pytest.approx(problem.value, rel=1e-5)
    np.testing.assert_allclose(params["w"], w.value, atol=1e-4)
    kept = np.linalg.norm(w.value.reshape(4, 3), axis=1) > 1e-6
    assert kept.tolist() == [True, False, True, False]
    if method == "pdhg":  # a prox on the parameter itself stays primal: whole groups exactly 0
        np.testing.assert_array_equal(np.abs(params["w"]).reshape(4, 3).sum(1) > 0, kept)


def test_pdhg_splits_two_terms_whose_prox_of_the_sum_is_unknown():
    """tv1d + norm2 on one parameter: no composition (fista refuses it and names admm or pdhg);
    under pdhg both become dual terms (their numbers: two dual terms in test_prox_gallery's 2-D TV)."""
    text = ("data y: real[N]\nparam x: real[N] = 0\nminimize 0.5 * sumsq(x - y) + 0.3 * tv1d(x) + 0.5 * norm2(x)\n"
            "solve { method = M; steps = 400 }")
    with pytest.raises(gradlang.GradlangError, match="method = admm or pdhg split the terms"):
        gradlang.compile(text.replace("M", "fista"))
    split = gradlang.compile(text.replace("M", "pdhg")).ir.split
    assert [t.fn for t in split.dual] == ["tv1d", "norm2"] and split.terms == ()
    # a term of p + c is a dual term under pdhg (its prox is not f's)
    split = gradlang.compile(text.replace("M", "pdhg").replace("0.3 * tv1d(x) + 0.5 * norm2(x)",
                                                                 "0.3 * norm1(x - y)")).ir.split
    assert [t.fn for t in split.dual] == ["norm1"] and split.terms == ()
    # a pair that composes stays a primal prox under pdhg
    split = gradlang.compile(text.replace("M", "pdhg").replace("0.5 * norm2(x)", "0.5 * norm1(x)")).ir.split
    assert [t.fn for t in split.terms] == ["tv1d", "norm1"] and split.dual == ()
    assert [c.rule for c in split.composed] == ["fused"]


@pytest.mark.parametrize("method, steps", [("proximal", 20), ("admm", 150), ("pdhg", 300)])
def test_fused_lasso_matches_cvxpy(method, steps):
    """norm1 + tv1d on one parameter (the fused lasso; fista in test_proximal.py): under proximal the
    composed prox (at step 1 = 1/L one step lands on the optimum), under admm two dual terms with
    K = I, under pdhg the composed prox as a primal step."""
    rng = np.random.default_rng(4)
    y = np.repeat(rng.normal(size=5), 6) + 0.3 * rng.normal(size=30)
    text = ("data y: real[N]\nparam x: real[N] = 0\nminimize 0.5 * sumsq(x - y) + 0.1 * norm1(x) + 0.5 * tv1d(x)\n"
            f"solve {{ method = {method}; steps = {steps} }}")
    program, params, objective = _solve(text, {"y": y.astype(np.float32)}, steps)
    split = program.ir.split
    if method == "admm":
        assert [t.fn for t in split.dual] == ["norm1", "tv1d"]
    else:
        assert [c.rule for c in split.composed] == ["fused"] and split.dual == ()
    x = cp.Variable(30)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(x - y) + 0.1 * cp.norm1(x) + 0.5 * cp.norm1(cp.diff(x))))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    assert objective == pytest.approx(problem.value, rel=1e-5)
    np.testing.assert_allclose(params["x"], x.value, atol=1e-4)


@pytest.mark.parametrize("method, steps", [("admm", 800), ("pdhg", 3000)])
def test_fused_sparse_logistic_regression_a_smooth_part_that_is_not_quadratic(method, steps):
    """A logistic loss: ADMM's x-update takes inner gradient steps (the IR says x_update=gradient),
    PDHG's L is the curvature at the initial point (the logistic's largest, at w = 0)."""
    rng = np.random.default_rng(7)
    m, n = 80, 10
    X = rng.normal(size=(m, n))
    y = (X @ np.repeat([1.0, -1.0], 5) + 0.5 * rng.normal(size=m) > 0).astype(float)
    D = np.eye(n)[1:] - np.eye(n)[:-1]
    text = ("use losses\ndata X: real[N, D]\ndata y: real[N]\ndata K: real[M, D]\nparam w: real[D] = 0\n"
            f"minimize mean(logistic(X @ w, y)) + 0.05 * norm1(K @ w)\nsolve {{ method = {method}; steps = {steps} }}")
    data = {"X": X.astype(np.float32), "y": y.astype(np.float32), "K": D.astype(np.float32)}
    program, params, objective = _solve(text, data, steps)
    if method == "admm":
        assert dict(program.ir.split.options)["x_update"] == "gradient"
    w = cp.Variable(n)
    z = X @ w
    problem = cp.Problem(cp.Minimize(cp.sum(cp.logistic(z) - cp.multiply(y, z)) / m + 0.05 * cp.norm1(D @ w)))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    assert objective == pytest.approx(problem.value, rel=1e-6)
    np.testing.assert_allclose(params["w"], w.value, atol=5e-5)
    assert (np.abs(D @ w.value) > 1e-6).sum() == 2  # fused: three pieces (the truth has two)


@pytest.mark.parametrize("method, steps", [("admm", 120), ("pdhg", 80)])
def test_nuclear_norm_completion_matches_cvxpy(method, steps):
    """examples/completion_digits.grad (40 x 64) under each splitting method.  pdhg: nuclear(Z) on the
    parameter itself is a primal prox (singular value thresholding) with pdhg's fixed step 1.9 / L.
    admm: a dual term with K = I, so the x-update (H + rho I) Z = ... (H the 0/1 mask) is solved by
    conjugate gradients, not a dense 2560 x 2560 factor.  The reference is SCS at eps 1e-9, as in
    test_prox_gallery.py (proximal and fista there)."""
    import re

    from .conftest import ROOT

    d = np.load(ROOT / "examples" / "data" / "digits_completion.npz")
    Z = cp.Variable(d["M_obs"].shape)
    problem = cp.Problem(cp.Minimize(0.5 * cp.sum_squares(cp.multiply(d["mask"], Z - d["M_obs"])) + cp.normNuc(Z)))
    problem.solve(solver=cp.SCS, eps=1e-9, max_iters=20000)
    text = (ROOT / "examples" / "completion_digits.grad").read_text().replace('"data/', f'"{ROOT}/examples/data/')
    text = re.sub(r"^solve \{.*\}$", f"solve {{ method = {method}; steps = {steps} }}", text, flags=re.MULTILINE)
    program, params, objective = _solve(text, None, steps)
    split = program.ir.split
    if method == "pdhg":
        assert [t.fn for t in split.terms] == ["nuclear"] and split.dual == ()
    else:
        assert [t.fn for t in split.dual] == ["nuclear"] and dict(split.options)["x_update"] == "cg"
    assert objective == pytest.approx(problem.value, rel=1e-5)
    np.testing.assert_allclose(params["Z"], Z.value, atol=1e-4)


@pytest.mark.parametrize("method, steps", [("admm", 300), ("pdhg", 1000)])
def test_least_absolute_deviations_an_affine_argument_matches_cvxpy(method, steps):
    """norm1(X @ w - y): a term through an affine map (offset -y), robust to the 6 outliers; under
    pdhg sumsq(w) stays a primal prox, under admm it is a dual term too.  (ADMM at its default
    rho = 1, 50 times too large here: residual balancing brings it down; fixed, 300 steps leave a
    gap of 5e-4.)"""
    rng = np.random.default_rng(8)
    m, n = 60, 5
    X = rng.normal(size=(m, n))
    y = X @ rng.normal(size=n) + 0.1 * rng.normal(size=m)
    y[:6] += 10
    text = ("data X: real[N, D]\ndata y: real[N]\nparam w: real[D] = 0\n"
            f"minimize norm1(X @ w - y) / N + 0.05 * sumsq(w)\nsolve {{ method = {method}; steps = {steps} }}")
    program, params, objective = _solve(text, {"X": X.astype(np.float32), "y": y.astype(np.float32)}, steps)
    lad = program.ir.split.dual[0]
    assert (lad.fn, lad.linear.name, lad.offset.op, lad.offset.args[0].name) == ("norm1", "X", "negative", "y")
    w = cp.Variable(n)
    problem = cp.Problem(cp.Minimize(cp.norm1(X @ w - y) / m + 0.05 * cp.sum_squares(w)))
    problem.solve(solver=cp.CLARABEL, tol_gap_abs=1e-10, tol_gap_rel=1e-10)
    assert objective == pytest.approx(problem.value, rel=1e-5)
    np.testing.assert_allclose(params["w"], w.value, atol=1e-4)


def test_a_smooth_prox_function_of_a_map_stays_in_the_smooth_part():
    """sumsq has a prox, but sumsq(X @ w - y) is smooth: the gradient takes it, under every method."""
    text = ("data X: real[N, D]\ndata y: real[N]\nparam w: real[D] = 0\n"
            "minimize 0.5 * sumsq(X @ w - y) + 0.1 * sumsq(X @ w) + 0.1 * norm1(w)\nsolve { method = M }")
    for method in ("fista", "proximal", "admm", "pdhg"):
        split = gradlang.compile(text.replace("M", method)).ir.split
        assert [t.fn for t in split.terms + split.dual] == ["norm1"], method


def test_admm_cg_x_update_solves_the_linear_system():
    """x_update = cg: one x-update from random z, w equals the exact minimiser of
    0.5 mean((A x - b)^2) + (rho/2) ||x - z + w||^2, i.e. (A'A/m + rho I) x = A'b/m + rho (z - w),
    solved here by numpy in float64 (rho = 3, so the test is not blind to a rho mix-up)."""
    from gradlang.backend.solvers._splitting import DualTerms

    rng = np.random.default_rng(11)
    m, n, rho = 30, 8, 3.0
    A, b = rng.normal(size=(m, n)), rng.normal(size=m)
    program = gradlang.compile("data A: real[M, N]\ndata b: real[M]\nparam x: real[N] = 0\n"
                               "minimize 0.5 * mean((A @ x - b)^2) + 0.1 * norm1(x)\n"
                               f"solve {{ method = admm(rho = {rho}); steps = 10 }}")
    assert dict(program.ir.split.options)["x_update"] == "cg"
    model, arrays = program.bind({"A": A.astype(np.float32), "b": b.astype(np.float32)})
    solver = make_solver(model, None, program.ir.solve)
    z, w, x0 = (jnp.asarray(rng.normal(size=n), jnp.float32) for _ in range(3))

    @jax.jit  # the init and the update in one compilation
    def x_update():
        state = solver._init({"x": x0}, arrays)._replace(z=(z,), w=(w,))
        return solver.x_update(state, DualTerms(model, arrays), arrays)["x"]

    x = x_update()
    z, w = np.asarray(z, np.float64), np.asarray(w, np.float64)
    exact = np.linalg.solve(A.T @ A / m + rho * np.eye(n), A.T @ b / m + rho * (z - w))
    np.testing.assert_allclose(np.asarray(x), exact, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("objective, x_update", [
    ("0.5 * mean((X @ w - y)^2) + 0.1 * norm1(w)", "cg"),               # least squares, a term on w itself
    ("sumsq(w - y[0:3]) / 2 + dot(w, X[0]) + 0.1 * norm1(w)", "cg"),     # a quadratic plus a linear term
    ("0.5 * mean((X @ w - y)^2) + 0.1 * norm1(w - y[0:3])", "cg"),       # an offset is no map
    ("0.5 * mean((X @ w - y)^2) + 0.1 * norm1(X @ w)", "cholesky"),      # a term through a map K
    ("0.5 * mean((X @ w - y)^2) + 0.1 * norm1(w) + norm1(X @ w)", "cholesky"),
    ("mean(logistic(X @ w, y)) + 0.1 * norm1(w)", "gradient"),           # not a polynomial
    ("sum(w^4) + 0.1 * norm1(w)", "gradient"),                           # degree 4
    ("sumsq(w) * sumsq(w) + 0.1 * norm1(w)", "gradient"),
    ("sumsq(exp(w)) + 0.1 * norm1(w)", "gradient"),
])
def test_admm_x_update_is_a_linear_solve_exactly_for_a_quadratic_smooth_part(objective, x_update):
    """A quadratic smooth part: the x-update is one linear system, by conjugate gradients when every
    term is on a parameter itself (H + rho I), by a cached Cholesky factor through a map K."""
    text = (f"use losses\ndata X: real[N, 3]\ndata y: real[N]\nparam w: real[3] = 0\n"
            f"minimize {objective}\nsolve {{ method = admm }}")
    assert dict(gradlang.compile(text).ir.split.options)["x_update"] == x_update
