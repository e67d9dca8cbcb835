"""Bilevel methods beyond the S008 set (tests/test_bilevel.py), against closed forms.

* ``grad_norm_penalty`` (G-PBGD, SEEDS §S096) on the S008 ridge problem at λ = 0.5: its direction at
  the penalised solution is ``dψ_γ/dλ = 2γ (H y_γ − Aᵀb)ᵀ y_γ`` with ``(A_vᵀA_v + 2γH²) y_γ =
  A_vᵀb_v + 2γ H Aᵀb`` (closed form, NumPy), O(1/γ) from the hypergradient −0.1270100.
* ``lv_hba`` (SEEDS §S006) on the constrained toy: lower ``min ½(y − 2)²`` s.t. ``y <= x``; upper
  ``½(x − 1)² + ½y²`` has its optimum at (0.5, 0.5) (the lower constraint active, multiplier 1.5),
  and the variant ``(x − 3)² + (y − 1)²`` at (3, 2) (inactive).  Both run in one program (two
  independent blocks, so one compilation), each within 1e-2.

Float32 and deterministic throughout.
"""

from __future__ import annotations

import itertools
from pathlib import Path

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gradlang
from gradlang.errors import GradlangError
from gradlang.ir.printer import config as printed

from .test_bilevel import EXACT, S008, hypergradient


def gpbgd_closed_form(gamma: float, lam: float = 0.5) -> float:
    A, b, Av, bv = S008["A"], S008["b"], S008["Av"], S008["bv"]
    H = A.T @ A + lam * np.eye(2)
    y = np.linalg.solve(Av.T @ Av + 2 * gamma * H @ H, Av.T @ bv + 2 * gamma * H @ A.T @ b)
    return float(2 * gamma * (H @ y - A.T @ b) @ y)


def test_grad_norm_penalty_equals_its_closed_form_and_tends_to_the_hypergradient():
    """After 100 upper steps at fixed λ (10 penalised steps each) the direction is dψ_γ/dλ (to float32
    round-off, which γ amplifies: 1.5e-5 at γ = 10); its error from the hypergradient shrinks like
    1/γ (9.4e-3 at γ = 1, 1.0e-3 at γ = 10)."""
    grads = {g: hypergradient(f"grad_norm_penalty(gamma = {g})", upper_steps=100) for g in (1, 10)}
    for g, value in grads.items():
        assert abs(value - gpbgd_closed_form(g)) < 3e-5, (g, value, gpbgd_closed_form(g))
    errors = [abs(grads[g] - EXACT) for g in (1, 10)]
    assert 8 < errors[0] / errors[1] < 11, errors


LV_HBA_TOY = """
param x1: real = 0
param x2: real = 0
lower active {
  param y: real = 0
  minimize 0.5 * (y - 2)^2
  subject to { y <= x1 }
  solve { optimizer = sgd(lr = 0.5); steps = 50 }
}
lower inactive {
  param y: real = 0
  minimize 0.5 * (y - 2)^2
  subject to { y <= x2 }
  solve { optimizer = sgd(lr = 0.5); steps = 50 }
}
minimize 0.5 * (x1 - 1)^2 + 0.5 * active.y^2 + (x2 - 3)^2 + (inactive.y - 1)^2
solve { optimizer = sgd(lr = 0.2); steps = 5000; bilevel = lv_hba }
"""


def test_lv_hba_solves_the_s006_toy_active_and_inactive():
    r = gradlang.compile(LV_HBA_TOY).fit(data={})
    p = r.params
    assert abs(p["x1"] - 0.5) < 1e-2 and abs(p["active.y"] - 0.5) < 1e-2, p
    assert abs(p["x2"] - 3.0) < 1e-2 and abs(p["inactive.y"] - 2.0) < 1e-2, p
    assert p["active.y"] <= p["x1"] + 1e-5 and p["inactive.y"] <= p["x2"] + 1e-5  # feasible


def test_value_gap_with_a_coupled_lower_constraint_reaches_the_s006_optimum():
    """V-PBGD with joint projected steps (alpha = the upper sgd's lr, 0.02) on the active S006 block: at γ = 10
    the penalised problem's solution is exactly (0.5, 0.5) (on the line y = x the penalty is zero)."""
    src = LV_HBA_TOY.split("lower inactive")[0] + """minimize 0.5 * (x1 - 1)^2 + 0.5 * active.y^2
solve { optimizer = sgd(lr = 0.02); steps = 2000; bilevel = value_gap }
"""
    p = gradlang.compile(src).fit(data={}).params
    assert abs(p["x1"] - 0.5) < 1e-3 and abs(p["active.y"] - 0.5) < 1e-3, p


@pytest.mark.parametrize("method", ["unroll", "penalty", "grad_norm_penalty", "bo_rep"])
def test_a_method_without_lower_constraints_is_a_located_error_suggesting_lv_hba(method):
    src = LV_HBA_TOY.replace("bilevel = lv_hba", f"bilevel = {method}")
    with pytest.raises(GradlangError) as err:
        gradlang.compile(src)
    d = err.value.diagnostics[0]
    assert "constrained lower level" in d.message and "lv_hba" in d.help, d
    assert (d.span.line, d.span.col) == (7, 16), d.span  # the constraint y <= x1


@pytest.mark.parametrize("block, line, col, message", [
    ("subject to { x1 >= 0 }", 7, 16, "this constraint of lower active does not involve its parameters"),
    ("subject to { y <= x1 }\n  subject to { y >= 0 }", 8, 3, "lower active has one subject to block"),
    ("subject to { y < }", 7, 20, ""),
    ("subject to { y <= exp() }", 7, 21, "cannot apply exp to ()"),
    ("subject to { y <= x1 }\n  minimize 1", 8, 3, "lower active needs exactly one objective"),
])
def test_lower_constraints_are_checked_with_located_errors(block, line, col, message):
    src = LV_HBA_TOY.replace("subject to { y <= x1 }", block, 1)
    with pytest.raises(GradlangError) as err:
        gradlang.compile(src)
    d = err.value.diagnostics[0]
    assert message in d.message and (d.span.line, d.span.col) == (line, col), (d.message, d.span)


def test_a_lower_objective_must_be_a_real_scalar():
    with pytest.raises(GradlangError) as err:
        gradlang.compile(LV_HBA_TOY.replace("minimize 0.5 * (y - 2)^2", "minimize 0.5 * (y - [2, 1])^2", 1))
    d = err.value.diagnostics[0]
    assert "the objective of lower active must be a real scalar, not real[2]" in d.message and d.span.line == 6


def test_emit_shows_a_lower_constraint_as_g_le_zero(tmp_path, capsys):
    from gradlang.cli import main

    path = tmp_path / "toy.grad"
    path.write_text(LV_HBA_TOY)
    assert main(["compile", str(path), "--emit", "ir:bilevel_to_hypergrad"]) == 0
    out = capsys.readouterr().out
    assert "  constraint y <= x1: subtract(lower:active.y, param:x1) <= 0" in out
    assert "hypergradient lv_hba(alpha=0.2, eta=0.5, beta=0.5, gamma1=10.0, gamma2=10.0, c=5.0, p=0.49" in out


def test_joint_steps_take_alpha_from_the_upper_sgd_or_write_it():
    """lv_hba (and value_gap on a constrained lower level) step (x, y) by alpha, x by the upper
    optimizer along the gradient mapping: alpha is the written sgd's lr, or sgd(lr = alpha) is written."""
    ir_ = gradlang.compile(LV_HBA_TOY.replace("optimizer = sgd(lr = 0.2); ", "")).ir
    assert printed(ir_.solve.optimizer) == "sgd(lr=0.2)"
    ir_ = gradlang.compile(LV_HBA_TOY.replace("lr = 0.2", "lr = 0.05").replace("lv_hba", "value_gap")).ir
    assert "alpha=0.05" in printed(ir_.lowers["active"].method)
    ir_ = gradlang.compile(LV_HBA_TOY.replace("lv_hba", "lv_hba(alpha = 0.1)")).ir
    assert "alpha=0.1," in printed(ir_.lowers["active"].method)  # written: kept


def test_implicit_through_the_kkt_system_of_a_constrained_lower_level():
    """The S006 toy's two blocks at x1 = 0.3 (y* = x1, the constraint active: φ1 = ½(x−1)² + ½x²,
    φ1' = 2x − 1 = −0.4) and x2 = 2.5 (y* = 2, inactive: φ2' = 2(x − 3) = −1); at x2 = 2 the constraint
    is active with a zero multiplier (no stable active set): a warning at the constraint naming lv_hba."""
    from gradlang.backend.solvers.gradient import direction_of
    from gradlang.backend.solvers.hypergradient import SingularLowerWarning

    model, _ = gradlang.compile(LV_HBA_TOY.replace("bilevel = lv_hba", "bilevel = implicit")).bind({})
    direction = direction_of(model)
    u = {"x1": jnp.float32(0.3), "x2": jnp.float32(2.5)}
    step = jax.jit(lambda u, est: direction(u, {}, None, est))
    _, _, g, est = step(u, direction.init(u, {}, {}))
    assert abs(g["x1"] + 0.4) < 1e-5 and abs(g["x2"] + 1.0) < 1e-5, g
    y = est["bilevel"]["y"]
    assert abs(y["active.y"] - 0.3) < 1e-5 and abs(y["inactive.y"] - 2.0) < 1e-5, y
    assert not est["bilevel"]["degenerate"].any()
    u = {"x1": jnp.float32(0.3), "x2": jnp.float32(2.0)}
    _, _, g, est = step(u, direction.init(u, {}, {}))
    assert est["bilevel"]["degenerate"].tolist() == [False, True]
    with pytest.warns(SingularLowerWarning, match="not stable") as caught:
        direction.reported(est)  # as the run's result reads the lower solution
    assert caught[0].lineno == 13 and "constraint 'y <= x2'" in str(caught[0].message), caught[0]
    assert "lv_hba" in str(caught[0].message)


BO_REP = """
data A: real[3, 2]; data b: real[3]; data Av: real[1, 2]; data bv: real[1]
param lam: real[2] = 0.5
lower inner {
  param y: real[2] = 0
  minimize 0.5 * sumsq(A @ y - b) + 0.5 * sum(lam * y^2)
  solve { optimizer = sgd(lr = 0.15); steps = 20 }
}
minimize 0.5 * sumsq(Av @ inner.y - bv)
solve { optimizer = sgd(lr = 0.05); steps = 10; bilevel = bo_rep(L = 6, iters = 50) }
"""


def test_bo_rep_neumann_hypergradient_and_normalised_steps():
    """S008 with one ridge weight per coordinate (λ = (0.5, 0.5)): after the refinement (200 lower
    steps) BO-REP's Neumann estimate (L = 6, 50 terms) is the closed form dφ/dλ_i = −v_i y*_i,
    v = H⁻¹ A_vᵀ(A_v y* − b_v), whose sum is the S008 value −0.1270100; every upper step (sgd, lr η =
    0.05, along m/‖m‖) has norm η, the direction turning as the momentum does."""
    from gradlang.backend.optimizer import build_optimizer
    from gradlang.backend.solvers import make_solver

    prog = gradlang.compile(BO_REP)
    model, arrays = prog.bind(S008)
    settings = prog.ir.solve
    solver = make_solver(model, build_optimizer(settings.optimizer, settings.steps), settings)
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    state = solver.init(model.init(jax.random.PRNGKey(0), data), data)
    step = jax.jit(lambda s, t: solver.step(s, data, t)[0])

    A, b, Av, bv = S008["A"], S008["b"], S008["Av"], S008["bv"]
    H = A.T @ A + 0.5 * np.eye(2)
    y = np.linalg.solve(H, A.T @ b)
    exact = -np.linalg.solve(H, Av.T @ (Av @ y - bv)) * y
    lams = [np.asarray(state.u["lam"])]
    for t in range(4):
        state = step(state, t)
        if t == 0:
            g = np.asarray(state.est["bilevel"]["hypergradient"]["lam"])
            assert np.allclose(g, exact, atol=2e-6) and abs(g.sum() - EXACT) < 2e-6, (g, exact)
        lams.append(np.asarray(state.u["lam"]))
    norms = [np.linalg.norm(b - a) for a, b in itertools.pairwise(lams)]
    assert np.allclose(norms, 0.05, rtol=1e-5), norms
    turns = [(b - a) / 0.05 for a, b in itertools.pairwise(lams)]
    assert not np.allclose(turns[0], turns[-1], atol=1e-4)  # not a fixed direction: the momentum moves


def test_bo_rep_with_another_upper_optimizer_is_a_located_error():
    with pytest.raises(GradlangError) as err:
        gradlang.compile(BO_REP.replace("optimizer = sgd(lr = 0.05)", "optimizer = adam(lr = 0.05)"))
    d = err.value.diagnostics[0]
    assert "bo_rep takes its upper step with sgd" in d.message and (d.span.line, d.span.col) == (10, 21), d
    prog = gradlang.compile(BO_REP.replace("optimizer = sgd(lr = 0.05); ", ""))
    assert prog.ir.solve.optimizer.value == "sgd"  # written by the pass when the program names none


# ---- a lower level with a whole set of solutions ------------------------------------------------
SET_OF_SOLUTIONS = """
param x: real = 0
lower low {
  param y: real[2] = 0
  minimize 0.5 * (sum(y) - x)^2
  solve { optimizer = sgd(lr = 0.4); steps = 20 }
}
minimize 0.5 * sumsq(low.y - [1, 2]) + 0.5 * x^2
solve { optimizer = sgd(lr = 0.05); steps = 3000; bilevel = value_gap(gamma = 50) }
"""


def test_value_gap_reaches_the_optimistic_optimum_of_a_lower_level_with_a_set_of_solutions():
    """The lower solutions are the line y1 + y2 = x (its Hessian [[1, 1], [1, 1]] is singular).  The
    optimistic bilevel optimum min_{x, y on the line} ½‖y − (1, 2)‖² + ½x² is x = 1, y = (0, 1) (y the
    projection of (1, 2) onto the line, then ½(x − 3)²/2 + ½x² minimised); V-PBGD's penalised
    optimum is x = 3γ/(1 + 3γ) = 0.9934 at γ = 50 (an O(1/γ) bias), y within 1e-2 of (0, 1)."""
    p = gradlang.compile(SET_OF_SOLUTIONS).fit(data={}).params
    assert abs(p["x"] - 1.0) < 2e-2 and np.allclose(p["low.y"], [0.0, 1.0], atol=2e-2), p
    assert abs(p["x"] - 150 / 151) < 1e-3, p


def test_implicit_on_a_singular_lower_hessian_warns_at_the_lower_block():
    from gradlang.backend.solvers.hypergradient import SingularLowerWarning

    src = SET_OF_SOLUTIONS.replace("value_gap(gamma = 50)", "implicit").replace("steps = 3000", "steps = 20")
    with pytest.warns(SingularLowerWarning) as caught:
        gradlang.compile(src).fit(data={})  # LU fails, the least-squares solution leaves a residual
    text = str(caught[0].message)
    assert caught[0].lineno == 3 and "^^^" in text, text  # located at the lower block, with its caret
    assert "warning: the lower Hessian of lower low is singular" in text and "value_gap" in text, text


# ---- the gallery's bilevel programs against their references ------------------------------------
GALLERY = Path(__file__).parent.parent / "examples"


def diabetes_standardised():
    d = np.load(GALLERY / "data" / "diabetes.npz")
    return d["X"] * np.sqrt(len(d["X"])), d["y_std"]  # columns of unit l2 norm -> unit variance


def test_ridge_tuning_example_equals_the_grid_search_optimum():
    """examples/ridge_tuning_diabetes.grad: 40 training rows, 402 held out; the grid over log λ
    (step 0.005, closed-form ridge) has its optimum at −0.820, validation MSE 0.540163."""
    X, y = diabetes_standardised()
    Xt, yt, Xv, yv = X[:40], y[:40], X[40:], y[40:]

    def val(t):
        w = np.linalg.solve(Xt.T @ Xt / 40 + np.exp(t) * np.eye(10), Xt.T @ yt / 40)
        return np.mean((Xv @ w - yv) ** 2)

    grid = np.linspace(-6, 4, 2001)
    values = [val(t) for t in grid]
    r = gradlang.compile(GALLERY / "ridge_tuning_diabetes.grad").fit()
    assert abs(r.params["log_lam"] - grid[np.argmin(values)]) < 0.05, r.params["log_lam"]
    assert abs(r.objective - min(values)) < 1e-5, (r.objective, min(values))


def test_box_radius_example_equals_the_grid_search_optimum():
    """examples/box_radius_diabetes.grad: least squares with |w_j| <= r on 40 rows (scipy's bounded
    least squares, BVLS, on a grid of log r, step 0.01) has its held-out optimum at log r = −1.51,
    validation MSE 0.519480, with five weights at the box's faces."""
    from scipy.optimize import lsq_linear

    X, y = diabetes_standardised()
    Xt, yt, Xv, yv = X[:40], y[:40], X[40:], y[40:]

    def val(t):
        w = lsq_linear(Xt, yt, bounds=(-np.exp(t), np.exp(t)), method="bvls", tol=1e-12).x
        return np.mean((Xv @ w - yv) ** 2)

    grid = np.linspace(-2.5, -0.5, 201)
    values = [val(t) for t in grid]
    r = gradlang.compile(GALLERY / "box_radius_diabetes.grad").fit()
    assert abs(r.params["log_r"] - grid[np.argmin(values)]) < 0.03, r.params["log_r"]
    assert abs(r.objective - min(values)) < 1e-5 and int(r.reports["at_the_faces"]) == 5, (r.objective, r.reports)


def test_hypercleaning_example_hypergradient_equals_the_implicit_function_theorem_in_numpy():
    """examples/hypercleaning_digits.grad at u = 0: the implicit hypergradient (CG on Hessian-vector
    products, the lower solve warm-started over 12 calls) equals the one assembled in float64 NumPy
    from the lower solution by scipy's L-BFGS-B (gtol 1e-12) and the explicit lower Hessian
    ``Σ_i s_i/n (diag(p_i) − p_i p_iᵀ) ⊗ x̃_i x̃_iᵀ + 0.02 I`` (x̃ = [x, 1], s = sigmoid(u)):
    ``∂φ/∂u_i = −s_i(1 − s_i)/n ∇CE_i · H⁻¹ ∇φ_W``, on every training row; the corrupted rows'
    hypergradients are mostly positive (33 of 40: their weights fall), the clean rows' negative (57 of 60)."""
    from scipy.optimize import minimize
    from scipy.special import expit, log_softmax

    from gradlang.backend.solvers.gradient import direction_of

    d = np.load(GALLERY / "data" / "digits.npz")
    X, labels = d["X"], d["y"]
    rows = np.arange(100)
    corrupted = rows % 5 < 2
    noisy = np.where(corrupted, (labels[:100] + 1 + rows % 9) % 10, labels[:100])
    Ytr, Yv = np.eye(10)[noisy], np.eye(10)[labels[100:400]]
    Xt, Xv = np.hstack([X[:100], np.ones((100, 1))]), np.hstack([X[100:400], np.ones((300, 1))])
    s = expit(np.zeros(100))

    def lower(p):  # p: [W; b] as a 65 x 10 matrix, raveled
        L = log_softmax(Xt @ p.reshape(65, 10), 1)
        value = np.mean(s * -np.sum(Ytr * L, 1)) + 0.01 * np.sum(p**2)
        return value, (Xt.T @ (s[:, None] * (np.exp(L) - Ytr) / 100)).ravel() + 0.02 * p

    p = minimize(lower, np.zeros(650), jac=True, method="L-BFGS-B",
                 options={"gtol": 1e-12, "ftol": 1e-15, "maxiter": 5000}).x
    P = np.exp(log_softmax(Xt @ p.reshape(65, 10), 1))
    H = 0.02 * np.eye(650)
    for i in range(100):
        H += s[i] / 100 * np.kron(np.outer(Xt[i], Xt[i]), np.diag(P[i]) - np.outer(P[i], P[i]))
    Pv = np.exp(log_softmax(Xv @ p.reshape(65, 10), 1))
    grad_upper = (Xv.T @ (Pv - Yv) / 300).ravel()
    v = np.linalg.solve(H, grad_upper)
    per_row = np.einsum("ij,ik->ijk", Xt, P - Ytr).reshape(100, 650)  # ∇_p CE_i
    exact = -s * (1 - s) / 100 * (per_row @ v)

    model, arrays = gradlang.compile(GALLERY / "hypercleaning_digits.grad").bind()
    direction = direction_of(model)
    data = {k: jnp.asarray(v) for k, v in arrays.items()}
    u = model.init(jax.random.PRNGKey(0), data)
    step = jax.jit(lambda est: direction(u, data, None, est))
    est = direction.init(u, data, {})
    for _ in range(12):
        _, _, g, est = step(est)
    got = np.asarray(g["u"])
    assert np.max(np.abs(got - exact)) < 2e-3 * np.max(np.abs(exact)), np.max(np.abs(got - exact))
    assert np.mean(exact[corrupted] > 0) > 0.8 and np.mean(exact[~corrupted] < 0) > 0.9  # 33 of 40, 57 of 60
