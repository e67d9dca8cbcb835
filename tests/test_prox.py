"""Prox operators (gradlang.lib.prox) and their compositions, against independent references.

References, all float64: CVXPY (Clarabel, gaps and feasibility 1e-9) solving
argmin_x f(x) + ||x - v||²/(2t) as a conic program; scipy's bounded scalar minimiser, coordinate by
coordinate, for the separable entries; scipy's bounded least squares (BVLS, an exact active-set
method) on the dual of the TV problem; enumeration of all supports for k_sparse.  Tolerances are
stated at each assertion; seeds are fixed.
"""

from __future__ import annotations

import itertools
import warnings
import zlib

import cvxpy as cp
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy.optimize import brentq, lsq_linear, minimize_scalar

from gradlang.lib.prox import PROXES, Declared, Prox, scaled
from gradlang.lib.prox.compose import Chain, Ridge, compose
from gradlang.lib.prox.group_norm import GroupNorm

ATOL = 1e-5  # against CVXPY (interior point, 1e-9 tolerances: usually within 1e-8 of the optimum, and
#              a few 1e-6 off on degenerate instances; ``assert_argmin`` also compares objectives)


@pytest.fixture(autouse=True)
def x64():
    with jax.enable_x64(True):
        yield


def P(name, *args, **kw) -> Prox:
    return PROXES.get(name).value(*args, **kw)


def cvx_prox(terms, shape, v, t, full=False):
    """argmin_x Σ terms(x) + ||x - v||²/(2t) by CVXPY; a term returns (expression, constraints).
    With ``full``, also F(z) -> (objective at z, largest constraint violation at z)."""
    x = cp.Variable(shape)
    obj, cons = 0, []
    for term in terms:
        e, c = term(x)
        obj, cons = obj + e, cons + c
    prob = cp.Problem(cp.Minimize(obj + cp.sum_squares(x - v) / (2 * t)), cons)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prob.solve(solver=cp.CLARABEL, tol_gap_abs=1e-9, tol_gap_rel=1e-9, tol_feas=1e-9)
    assert prob.status == "optimal", prob.status
    ref = np.asarray(x.value)
    if not full:
        return ref

    def F(z):
        x.value = np.asarray(z, np.float64)
        return float(prob.objective.value), max([float(np.max(c.violation())) for c in cons] + [0.0])

    return ref, F


def assert_argmin(ours, terms, v, t, atol=ATOL):
    """ours is CVXPY's argmin to ``atol``, and no worse than it: feasible to 1e-10, and
    F(ours) <= F(ref) + 1e-10 + 100 viol(ref) (CVXPY's point may be infeasible by up to its
    tolerance, which buys it about multiplier x violation).  The objective is 1/t-strongly convex, so a point δ from the optimum is δ²/(2t) worse:
    the objective check alone resolves errors above about sqrt(2t 1e-9) < 1e-4, however degenerate
    the problem (ties in TV problems leave CVXPY's interior point ~1e-5 off in flat directions)."""
    ref, F = cvx_prox(terms, np.shape(v), v, t, full=True)
    ours = np.asarray(ours)
    f_ours, viol = F(ours)
    f_ref, viol_ref = F(ref)
    assert viol <= 1e-10, viol
    assert f_ours <= f_ref + 1e-10 + 100 * viol_ref, (f_ours, f_ref, viol_ref)
    np.testing.assert_allclose(ours, ref, rtol=0, atol=atol)


# name -> (constructor arguments, shape, CVXPY term); every convex entry, with fixed parameters
N = 7
_rng = np.random.default_rng(7)
_low = _rng.uniform(-1, 0, N)
_high = _low + _rng.uniform(0.2, 2, N)
_a = _rng.normal(size=N)
_A, _b = _rng.normal(size=(3, N)), _rng.normal(size=3)
_groups = np.array([3, 3, 1, 1, 1, 7, 7])
_GROUP_IDX = [np.flatnonzero(_groups == g) for g in np.unique(_groups)]


def _group_term(x):
    return sum(cp.norm(x[idx], 2) for idx in _GROUP_IDX), []


CASES = {
    "norm1": ((), (N,), lambda x: (cp.norm1(x), [])),
    "norm2": ((), (N,), lambda x: (cp.norm(x, 2), [])),
    "sumsq": ((), (N,), lambda x: (cp.sum_squares(x), [])),
    "elastic_net": ((0.7, 0.3), (N,), lambda x: (0.7 * cp.norm1(x) + 0.3 * cp.sum_squares(x), [])),
    "group_norm": ((_groups,), (N,), _group_term),
    "nuclear": ((), (4, 3), lambda x: (cp.normNuc(x), [])),
    "tv1d": ((), (12,), lambda x: (cp.norm1(cp.diff(x)), [])),
    "linf": ((), (N,), lambda x: (cp.norm_inf(x), [])),
    "nonneg": ((), (N,), lambda x: (0, [x >= 0])),
    "box": ((_low, _high), (N,), lambda x: (0, [x >= _low, x <= _high])),
    "simplex": ((2.0,), (N,), lambda x: (0, [x >= 0, cp.sum(x) == 2.0])),
    "l1_ball": ((1.5,), (N,), lambda x: (0, [cp.norm1(x) <= 1.5])),
    "l2_ball": ((1.2,), (N,), lambda x: (0, [cp.norm(x, 2) <= 1.2])),
    "linf_ball": ((0.6,), (N,), lambda x: (0, [cp.norm_inf(x) <= 0.6])),
    "hyperplane": ((_a, 0.7), (N,), lambda x: (0, [_a @ x == 0.7])),
    "halfspace": ((_a, -0.3), (N,), lambda x: (0, [_a @ x <= -0.3])),
    "affine": ((_A, _b), (N,), lambda x: (0, [_A @ x == _b])),
    "k_sparse": ((3,), (N,), None),  # not convex: enumeration, below
}


def instance(name):
    args, shape, _ = CASES[name]
    return P(name, *args), shape


def test_every_entry_has_a_case():
    assert set(PROXES.names()) <= set(CASES)


ENTRIES = [n for n in sorted(CASES) if n in PROXES]  # a case whose entry is not there yet is skipped


# ---------------------------------------------------------------- brute force, every entry

@pytest.mark.parametrize("name", [n for n in ENTRIES if CASES[n][2] is not None])
def test_prox_equals_cvxpy_argmin(name):
    p, shape = instance(name)
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    for trial, t in enumerate((0.4, 1.3)):
        v = (1.5 if trial == 0 else 0.6) * rng.normal(size=shape)
        ours = p.prox(jnp.asarray(v), t)
        assert ours.dtype == jnp.float64
        assert_argmin(ours, [CASES[name][2]], v, t, atol=1e-4 if name == "tv1d" else ATOL)


def _scalar_g(name):
    """g_i(z) for the separable entries, and the interval where g_i is finite (numpy, not ours)."""
    if name == "norm1":
        return lambda i, z: abs(z), lambda i: (-50, 50)
    if name == "sumsq":
        return lambda i, z: z * z, lambda i: (-50, 50)
    if name == "elastic_net":
        return lambda i, z: 0.7 * abs(z) + 0.3 * z * z, lambda i: (-50, 50)
    if name == "nonneg":
        return lambda i, z: 0.0, lambda i: (0, 50)
    if name == "box":
        return lambda i, z: 0.0, lambda i: (_low[i], _high[i])
    if name == "linf_ball":
        return lambda i, z: 0.0, lambda i: (-0.6, 0.6)
    raise KeyError(name)


@pytest.mark.parametrize("name", ["norm1", "sumsq", "elastic_net", "nonneg", "box", "linf_ball"])
def test_separable_prox_equals_scalar_minimisation(name):
    """Coordinate by coordinate: scipy's bounded Brent minimiser of g_i(z) + (z - v_i)²/(2t)."""
    p, shape = instance(name)
    assert p.separable
    g, interval = _scalar_g(name)
    rng = np.random.default_rng(1)
    v, t = 1.5 * rng.normal(size=shape), 0.8
    ours = np.asarray(p.prox(jnp.asarray(v), t))
    for i in range(N):
        res = minimize_scalar(lambda z, i=i: g(i, z) + (z - v[i]) ** 2 / (2 * t), bounds=interval(i),
                              method="bounded", options={"xatol": 1e-12})
        assert abs(ours[i] - res.x) < 1e-7, (name, i, ours[i], res.x)  # Brent: ~sqrt(eps) in x


def test_k_sparse_is_a_nearest_k_sparse_point():
    """Against all C(n, k) supports: ours is k-sparse, equals v on its support, and is as near."""
    rng = np.random.default_rng(2)
    n = 7
    for k in (0, 1, 3, 7):
        p = P("k_sparse", k)
        assert not p.convex
        for _ in range(3):
            v = rng.normal(size=n)
            ours = np.asarray(p.prox(jnp.asarray(v), 0.5))
            best = min(sum(v[i] ** 2 for i in range(n) if i not in s)
                       for s in itertools.combinations(range(n), k))
            assert np.count_nonzero(ours) <= k
            support = ours != 0
            np.testing.assert_array_equal(ours[support], v[support])
            assert abs(np.sum((ours - v) ** 2) - best) < 1e-12


def _tv_dual_reference(y, lam):
    """x = y - Dᵀu with u = argmin ||y - Dᵀu|| over |u| <= lam (the dual; BVLS is exact)."""
    n = len(y)
    if n == 1:
        return y.copy()
    D = np.diff(np.eye(n), axis=0)
    u = lsq_linear(D.T, y, bounds=(-lam, lam), method="bvls", tol=1e-14).x
    return y - D.T @ u


def _tv_inputs(rng, n, batch):
    kinds = [rng.normal(size=n),                                      # noise
             np.round(2 * rng.normal(size=n)) / 2,                    # many ties
             np.repeat(3 * rng.normal(size=n // 5 + 1), 5)[:n] + 0.1 * rng.normal(size=n),  # steps
             np.cumsum(rng.normal(size=n))]                           # a random walk
    ys = np.stack([kinds[i % 4] * (1 + i // 4) for i in range(batch)])
    lams = np.array([0.01, 0.1, 0.5, 1.0, 3.0, 100.0, 0.3, 2.0])[np.arange(batch) % 8]
    return ys, lams


@pytest.mark.parametrize("n", [1, 2, 3, 5, 17, 40])
def test_tv1d_is_exact_against_the_dual_qp(n):
    """Condat's algorithm vs BVLS on the dual, 16 inputs per n (ties, steps, walks, λ 0.01..100),
    through vmap over (v, t); agreement to 1e-10 (both are exact up to rounding)."""
    rng = np.random.default_rng(n)
    ys, lams = _tv_inputs(rng, n, 16)
    tv = P("tv1d")
    ours = np.asarray(jax.jit(jax.vmap(tv.prox))(jnp.asarray(ys), jnp.asarray(lams)))
    for y, lam, x in zip(ys, lams, ours):
        np.testing.assert_allclose(x, _tv_dual_reference(y, lam), rtol=0, atol=1e-10)


def test_tv1d_n10000_against_cvxpy_and_its_certificate():
    """n = 10000: an objective no worse than CVXPY's (relative 1e-12) and within 1e-3 of its
    solution; and the exact optimality certificate: u = -cumsum(y - x) is the dual solution, so
    |u_i| <= t everywhere, u_i = t sign(x_{i+1} - x_i) at every jump, and Σ (y - x) = 0 (1e-9)."""
    rng = np.random.default_rng(3)
    n, t = 10000, 2.0
    y = 0.1 * np.cumsum(rng.normal(size=n)) + rng.normal(size=n)
    x = np.asarray(P("tv1d").prox(jnp.asarray(y), t))
    ref = cvx_prox([lambda z: (cp.norm1(cp.diff(z)), [])], (n,), y, t)

    def obj(z):
        return np.sum(np.abs(np.diff(z))) + np.sum((z - y) ** 2) / (2 * t)

    assert obj(x) <= obj(ref) * (1 + 1e-12)
    assert np.max(np.abs(x - ref)) < 1e-3
    u = -np.cumsum(y - x)
    assert abs(u[-1]) < 1e-9 and np.max(np.abs(u)) <= t + 1e-9
    jumps = np.diff(x)
    on = jumps != 0
    assert on.sum() > 100  # a real piecewise-constant solution
    np.testing.assert_allclose(u[:-1][on], t * np.sign(jumps[on]), rtol=0, atol=1e-9)


def test_tv1d_derivative_matches_finite_differences():
    """The custom JVP (segment means): jacfwd and jacrev in v and the derivative in t equal central
    differences (step 1e-6, agreement 1e-7) at a random walk, where the segmentation is stable."""
    rng = np.random.default_rng(14)
    y, t, eps = jnp.asarray(np.cumsum(rng.normal(size=15))), 0.7, 1e-6
    tv = P("tv1d")
    fwd = np.asarray(jax.jacfwd(lambda v: tv.prox(v, t))(y))
    rev = np.asarray(jax.jacrev(lambda v: tv.prox(v, t))(y))
    fd = np.stack([(np.asarray(tv.prox(y.at[i].add(eps), t)) - np.asarray(tv.prox(y.at[i].add(-eps), t)))
                   / (2 * eps) for i in range(15)], 1)
    assert 2 < len(np.unique(np.asarray(tv.prox(y, t)))) < 14  # some segments, not all singletons
    np.testing.assert_allclose(fwd, fd, atol=1e-7)
    np.testing.assert_allclose(rev, fd, atol=1e-7)
    dt = np.asarray(jax.jacfwd(lambda s: tv.prox(y, s))(t))
    fd_t = (np.asarray(tv.prox(y, t + eps)) - np.asarray(tv.prox(y, t - eps))) / (2 * eps)
    np.testing.assert_allclose(dt, fd_t, atol=1e-7)


def test_tv1d_rows():
    """On a matrix the prox is taken row by row and the value sums the rows' variations."""
    rng = np.random.default_rng(4)
    v = rng.normal(size=(3, 9))
    tv = P("tv1d")
    ours = np.asarray(tv.prox(jnp.asarray(v), 0.7))
    for row, x in zip(v, ours):
        np.testing.assert_allclose(x, _tv_dual_reference(row, 0.7), atol=1e-10)
    assert float(tv.value(jnp.asarray(v))) == pytest.approx(np.abs(np.diff(v, axis=1)).sum())


# ---------------------------------------------------------------- Moreau decomposition

def _proj_l1_ball(w):
    """Onto {||y||₁ <= 1}: soft-threshold at the root θ of Σ max(|w| - θ, 0) = 1 (scipy brentq)."""
    if np.abs(w).sum() <= 1:
        return w
    theta = brentq(lambda th: np.maximum(np.abs(w) - th, 0).sum() - 1, 0, np.abs(w).max(), xtol=1e-15)
    return np.sign(w) * np.maximum(np.abs(w) - theta, 0)


def _proj_tv_dual(w):
    """Onto {Dᵀu : |u| <= 1}, the unit ball of TV's dual norm: w minus the TV prox residual."""
    return w - _tv_dual_reference(w, 1.0)


def _proj_spectral(w):
    u, s, vt = np.linalg.svd(w, full_matrices=False)
    return (u * np.minimum(s, 1)) @ vt


def _proj_group_dual(w):
    out = w.copy()
    for idx in _GROUP_IDX:
        out[idx] = w[idx] / max(1, np.linalg.norm(w[idx]))
    return out


# the conjugate of f with step s, prox_{s f*}(y), in closed form (numpy): norms give the projection on
# the dual-norm unit ball, for every s
CONJ = {
    "norm1": lambda y, s: np.clip(y, -1, 1),
    "norm2": lambda y, s: y / max(1, np.linalg.norm(y)),
    "linf": lambda y, s: _proj_l1_ball(y),
    "group_norm": lambda y, s: _proj_group_dual(y),
    "nuclear": lambda y, s: _proj_spectral(y),
    "tv1d": lambda y, s: _proj_tv_dual(y),
    "sumsq": lambda y, s: y / (1 + s / 2),  # f* = ||y||²/4
    # f = 0.7|x| + 0.3x²: f*(y) = Σ (|y| - 0.7)₊² / 1.2
    "elastic_net": lambda y, s: np.where(np.abs(y) <= 0.7, y,
                                         np.sign(y) * (0.6 * np.abs(y) + s * 0.7) / (0.6 + s)),
}


@pytest.mark.parametrize("name", sorted(CONJ))
def test_moreau_decomposition(name):
    """v = prox_{t f}(v) + t prox_{f*/t}(v/t), with the conjugate's prox in closed form; and
    ``prox_conj`` (what primal-dual methods call) equals that closed form (1e-10)."""
    p, shape = instance(name)
    rng = np.random.default_rng(5)
    for t in (0.3, 1.7):
        v = 2 * rng.normal(size=shape)
        ours = np.asarray(p.prox(jnp.asarray(v), t))
        np.testing.assert_allclose(ours + t * CONJ[name](v / t, 1 / t), v, rtol=0, atol=1e-10)
        y, s = rng.normal(size=shape), 0.5 + t
        np.testing.assert_allclose(np.asarray(p.prox_conj(jnp.asarray(y), s)), CONJ[name](y, s),
                                   rtol=0, atol=1e-10)


# ---------------------------------------------------------------- SEEDS.md §3.13 item 6

@pytest.mark.parametrize("dtype", [jnp.float64, jnp.float32])
def test_seeds_closed_forms(dtype):
    """Soft-threshold, group soft-threshold (S001), SVT (S164) and the TV pair (S182), exact up to
    rounding: 1e-12 in float64, 1e-6 in float32."""
    tol = 1e-12 if dtype == jnp.float64 else 1e-6
    a = lambda x: jnp.asarray(x, dtype)

    def check(got, want):
        assert got.dtype == dtype
        np.testing.assert_allclose(np.asarray(got), want, rtol=0, atol=tol)

    check(P("norm1").prox(a([3.0, -0.5, -2.0, 1.0]), 1.0), [2.0, 0.0, -1.0, 0.0])
    # S001: v <- max(0, 1 - β/(ρ||v||)) v group by group, β/ρ = 1: ||(3,4)|| = 5 -> 0.8 (3,4)
    check(P("group_norm", [0, 0, 1, 1]).prox(a([3.0, 4.0, 0.3, 0.4]), 1.0), [2.4, 3.2, 0.0, 0.0])
    check(P("norm2").prox(a([3.0, 4.0]), 1.0), [2.4, 3.2])
    # S164: prox_{0.5||·||_*}(diag(3, 1, 0.2)) = diag(2.5, 0.5, 0)
    check(P("nuclear").prox(a(np.diag([3.0, 1.0, 0.2])), 0.5), np.diag([2.5, 0.5, 0.0]))
    # S182: argmin ½x₁² + ½(x₂ - 2)² + 0.5|x₂ - x₁| = (0.5, 1.5)
    check(P("tv1d").prox(a([0.0, 2.0]), 0.5), [0.5, 1.5])


# ---------------------------------------------------------------- every entry: docs, jit, vmap, f32

@pytest.mark.parametrize("name", PROXES.names())
def test_entry_documented_and_cited(name):
    entry = PROXES.get(name)
    doc = entry.value.__doc__ or ""
    assert entry.summary and ("prox" in doc or "proj" in doc), name
    assert len(entry.cite) > 20, name
    assert entry.value.name == name


@pytest.mark.parametrize("name", PROXES.names())
def test_jit_vmap_float32(name):
    """vmap(jit(prox)) over a batch of v and of t, in float32: float32 out, finite, and within 1e-4
    of the float64 prox; the value is a finite scalar."""
    p, shape = instance(name)
    rng = np.random.default_rng(6)
    v = rng.normal(size=(3, *shape))
    t = np.array([0.3, 0.9, 1.4])
    ref = np.stack([np.asarray(p.prox(jnp.asarray(vi), ti)) for vi, ti in zip(v, t)])
    with jax.enable_x64(False):
        p32, _ = instance(name)
        out = jax.vmap(jax.jit(lambda v, t: p32.prox(v, t)))(jnp.asarray(v, jnp.float32), jnp.asarray(t, jnp.float32))
        val = jax.jit(lambda v: p32.value(v))(jnp.asarray(v[0], jnp.float32))
        assert out.dtype == jnp.float32 and val.dtype == jnp.float32 and val.shape == ()
        assert np.all(np.isfinite(np.asarray(out))) and np.isfinite(float(val))
    np.testing.assert_allclose(np.asarray(out), ref, rtol=0, atol=1e-4)


@pytest.mark.parametrize("name", [n for n in PROXES.names() if PROXES.get(n).value.indicator])
def test_indicator_value_and_violation(name):
    """An indicator's value is 0; its violation is 0 on the projection and the distance off it."""
    p, shape = instance(name)
    v = 3 * np.random.default_rng(8).normal(size=shape)
    x = p.prox(jnp.asarray(v), 1.0)
    assert float(p.value(jnp.asarray(v))) == 0.0
    assert float(p.violation(x)) < 1e-12
    assert float(p.violation(jnp.asarray(v))) == pytest.approx(np.linalg.norm(v - np.asarray(x)))
    assert float(p.violation(jnp.asarray(v))) > 1e-3  # v was not in the set


def test_scaled_and_errors():
    v = jnp.asarray(np.random.default_rng(9).normal(size=5))
    s = scaled(P("norm1"), 2.5)
    np.testing.assert_allclose(s.prox(v, 0.4), P("norm1").prox(v, 1.0), atol=1e-15)
    assert float(s.value(v)) == pytest.approx(2.5 * float(jnp.sum(jnp.abs(v))))
    assert scaled(P("nonneg"), 3.0) == P("nonneg")
    with pytest.raises(ValueError, match="positive"):
        scaled(P("norm1"), -1.0)
    # traced ids without num_groups (data): n segments bound the groups; the same prox and value
    ids = jnp.array([0, 0, 1, 1, 1])
    got = jax.jit(lambda g: GroupNorm(g).prox(v, 0.5))(ids)
    np.testing.assert_allclose(got, P("group_norm", [5, 5, 9, 9, 9]).prox(v, 0.5), atol=1e-15)
    assert float(jax.jit(lambda g: GroupNorm(g).value(v))(ids)) == pytest.approx(
        float(P("group_norm", [5, 5, 9, 9, 9]).value(v)), rel=1e-12)
    # traced ids are fine with num_groups given
    got = jax.jit(lambda g: GroupNorm(g, num_groups=2).prox(v, 0.5))(jnp.array([0, 0, 1, 1, 1]))
    np.testing.assert_allclose(got, P("group_norm", [5, 5, 9, 9, 9]).prox(v, 0.5), atol=1e-15)
    with pytest.raises(ValueError, match="matrix"):
        P("nuclear").prox(v, 1.0)


# ---------------------------------------------------------------- compositions

M = 9
_lo = _rng.uniform(-1, 0, M)
_hi = _lo + _rng.uniform(0.3, 2, M)
_g9 = np.array([0, 0, 0, 1, 1, 2, 2, 2, 2])
_G9 = [np.flatnonzero(_g9 == g) for g in range(3)]

T = {  # the CVXPY term of each part, by a short key
    "l1": lambda c: (lambda x: (c * cp.norm1(x), [])),
    "tv": lambda c: (lambda x: (c * cp.norm1(cp.diff(x)), [])),
    "sq": lambda c: (lambda x: (c * cp.sum_squares(x), [])),
    "l2": lambda c: (lambda x: (c * cp.norm(x, 2), [])),
    "linf": lambda c: (lambda x: (c * cp.norm_inf(x), [])),
    "group": lambda c: (lambda x: (c * sum(cp.norm(x[i], 2) for i in _G9), [])),
    "en": lambda l1, l2: (lambda x: (cp.sum(cp.multiply(l1, cp.abs(x))) + cp.sum(cp.multiply(l2, cp.square(x))), [])),
    "nonneg": lambda: (lambda x: (0, [x >= 0])),
    "box": lambda lo, hi: (lambda x: (0, [x >= lo, x <= hi])),
    "l2ball": lambda r: (lambda x: (0, [cp.norm(x, 2) <= r])),
    "simplex": lambda: (lambda x: (0, [x >= 0, cp.sum(x) == 1])),
}

# (id, builder of the two parts, CVXPY terms, the rule's first words)
COMPOSED = [
    ("fused_lasso", lambda: (scaled(P("norm1"), 0.4), scaled(P("tv1d"), 0.7)),
     [T["l1"](0.4), T["tv"](0.7)], "after tv1d"),
    ("ridge_norm2", lambda: (scaled(P("sumsq"), 0.3), P("norm2")), [T["sq"](0.3), T["l2"](1)], "ridge"),
    ("ridge_tv", lambda: (P("tv1d"), scaled(P("sumsq"), 0.3)), [T["sq"](0.3), T["tv"](1)], "ridge"),
    ("enet_nonneg", lambda: (P("elastic_net", 0.2, 0.5), P("nonneg")),
     [T["en"](0.2, 0.5), T["nonneg"]()], "clip after"),
    ("enet_weights_box", lambda: (P("elastic_net", np.linspace(0.1, 0.9, M), np.linspace(1, 0, M)),
                                  P("box", _lo, _hi)),
     [T["en"](np.linspace(0.1, 0.9, M), np.linspace(1, 0, M)), T["box"](_lo, _hi)], "clip after"),
    ("tv_box", lambda: (P("tv1d"), P("box", -0.5, 0.8)), [T["tv"](1), T["box"](-0.5, 0.8)], "after tv1d"),
    ("tv_nonneg", lambda: (P("nonneg"), scaled(P("tv1d"), 0.6)), [T["tv"](0.6), T["nonneg"]()], "after tv1d"),
    ("nonneg_norm2", lambda: (P("norm2"), P("nonneg")), [T["l2"](1), T["nonneg"]()], "nonneg before"),
    ("nonneg_group", lambda: (P("nonneg"), P("group_norm", _g9)), [T["group"](1), T["nonneg"]()], "nonneg before"),
    ("nonneg_linf", lambda: (P("nonneg"), scaled(P("linf"), 0.5)), [T["linf"](0.5), T["nonneg"]()], "nonneg before"),
    ("sparse_group_lasso", lambda: (scaled(P("norm1"), 0.3), P("group_norm", _g9)),
     [T["l1"](0.3), T["group"](1)], "soft-threshold before"),
    ("l1_linf", lambda: (P("linf"), scaled(P("norm1"), 0.3)), [T["l1"](0.3), T["linf"](1)], "soft-threshold before"),
    ("l1_l2ball", lambda: (P("norm1"), P("l2_ball", 0.8)), [T["l1"](1), T["l2ball"](0.8)], "soft-threshold before"),
    ("enet_group", lambda: (P("elastic_net", 0.3, 0.2), scaled(P("group_norm", _g9), 0.5)),
     [T["en"](0.3, 0.2), T["group"](0.5)], "ridge"),
    ("nonneg_simplex", lambda: (P("nonneg"), P("simplex")), [T["nonneg"](), T["simplex"]()], None),
]


@pytest.mark.parametrize("case", COMPOSED, ids=[c[0] for c in COMPOSED])
def test_compose_equals_cvxpy(case):
    """compose(a, b).prox equals CVXPY's argmin of a + b + ||x - v||²/(2t), either order of a, b."""
    _, build, terms, rule = case
    rng = np.random.default_rng(10)
    a, b = build()
    for first, second in ((a, b), (b, a)):
        c = compose(first, second)
        assert c is not None
        if rule is not None:
            assert c.rule.startswith(rule), c.rule
        for t in (0.5, 1.5):
            v = 1.5 * rng.normal(size=M)
            v[3:6] = v[3]  # a run of ties for the TV cases
            x = c.prox(jnp.asarray(v), t)
            assert_argmin(x, terms, v, t, atol=1e-4)
            want = sum(term(cp.Constant(np.asarray(x)))[0] for term in terms)
            assert float(c.value(x)) == pytest.approx(float(getattr(want, "value", want)), abs=1e-9)


def test_compose_three_terms():
    """(l1 + tv) + nonneg and (tv + box) + l1 stay exact; (l1 + group) + sumsq is a Ridge."""
    rng = np.random.default_rng(11)
    fused = compose(scaled(P("norm1"), 0.3), P("tv1d"))
    three = compose(fused, P("nonneg"))
    assert isinstance(three, Chain) and three.first.name == "tv1d"
    v, t = 1.5 * rng.normal(size=M), 0.8
    assert_argmin(three.prox(jnp.asarray(v), t), [T["l1"](0.3), T["tv"](1), T["nonneg"]()], v, t, atol=1e-4)
    sgl = compose(compose(P("norm1"), P("group_norm", _g9)), scaled(P("sumsq"), 0.4))
    assert isinstance(sgl, Ridge)
    assert_argmin(sgl.prox(jnp.asarray(v), t), [T["l1"](1), T["group"](1), T["sq"](0.4)], v, t)


def _best_over_supports(v, k, t, cost_in):
    """min over supports S, |S| = k, of Σ_{i∈S} cost_in(v_i) + Σ_{i∉S} v_i²/(2t)."""
    return min(sum(cost_in(v[i]) if i in s else v[i] ** 2 / (2 * t) for i in range(len(v)))
               for s in itertools.combinations(range(len(v)), k))


def test_compose_nonconvex_k_sparse():
    """nonneg + k_sparse = top-k of max(v, 0); sumsq + k_sparse = top-k of v/(1 + μt); both as good
    as the best of all C(7, 3) supports (1e-12)."""
    rng = np.random.default_rng(12)
    n, k, t, mu = 7, 3, 0.7, 0.8
    nn = compose(P("nonneg"), P("k_sparse", k))
    rr = compose(P("k_sparse", k), scaled(P("sumsq"), mu / 2))
    s = 1 + mu * t
    for _ in range(5):
        v = rng.normal(size=n)
        x = np.asarray(nn.prox(jnp.asarray(v), t))
        assert np.count_nonzero(x) <= k and np.all(x >= 0)
        best = _best_over_supports(v, k, t, lambda vi: min(vi, 0) ** 2 / (2 * t))
        assert np.sum((x - v) ** 2) / (2 * t) == pytest.approx(best, abs=1e-12)
        x = np.asarray(rr.prox(jnp.asarray(v), t))
        assert np.count_nonzero(x) <= k
        obj = mu / 2 * np.sum(x ** 2) + np.sum((x - v) ** 2) / (2 * t)
        best = _best_over_supports(v, k, t, lambda vi: mu / 2 * (vi / s) ** 2 + (vi / s - vi) ** 2 / (2 * t))
        assert obj == pytest.approx(best, abs=1e-12)


def _berhu(**flags):
    """LANGUAGE.md's example declaration: fn berhu(x) and its prox berhu(v, t)."""
    return Declared(lambda x: jnp.sum(jnp.where(jnp.abs(x) <= 1, jnp.abs(x), (x ** 2 + 1) / 2)),
                    lambda v, t: jnp.where(jnp.abs(v) <= 1 + t, jnp.sign(v) * jax.nn.relu(jnp.abs(v) - t),
                                           v / (1 + t)), "berhu", **flags)


def test_declared_berhu_with_norm1():
    """A declared even, uniform separable term (berhu) composes with norm1 as prox_berhu(soft(v));
    both it and the declared prox equal scipy's scalar minimisation, coordinate by coordinate
    (Brent, 1e-7).  Without the flags compose refuses."""
    berhu = _berhu(is_uniform=True, is_even=True)
    assert berhu.sign_preserving and compose(P("norm1"), _berhu()) is None
    c = compose(scaled(P("norm1"), 0.4), berhu)
    assert c.rule.startswith("soft-threshold before")
    g = lambda z: abs(z) if abs(z) <= 1 else (z * z + 1) / 2
    v, t = np.array([-3.0, -1.7, -0.9, -0.2, 0.0, 0.3, 1.2, 1.6, 2.2, 4.0]), 0.8
    got_c, got_b = np.asarray(c.prox(jnp.asarray(v), t)), np.asarray(berhu.prox(jnp.asarray(v), t))
    for i, vi in enumerate(v):
        for got, h in ((got_c, lambda z: 0.4 * abs(z) + g(z)), (got_b, g)):
            res = minimize_scalar(lambda z, h=h, vi=vi: h(z) + (z - vi) ** 2 / (2 * t), bounds=(-10, 10),
                                  method="bounded", options={"xatol": 1e-12})
            assert abs(got[i] - res.x) < 1e-7, (i, got[i], res.x)
    assert compose(berhu, P("tv1d")).rule.startswith("after tv1d")


NOT_COMPOSABLE = [
    ("tv1d", "norm2"), ("nuclear", "norm1"), ("group_norm", "tv1d"), ("l1_ball", "l2_ball"),
    ("simplex", "norm1"), ("norm2", "group_norm"), ("hyperplane", "nonneg"), ("linf", "tv1d"),
]


@pytest.mark.parametrize("pair", NOT_COMPOSABLE, ids=["+".join(p) for p in NOT_COMPOSABLE])
def test_compose_refuses(pair):
    a, b = (instance(n)[0] if n != "group_norm" else P("group_norm", _g9) for n in pair)
    assert compose(a, b) is None and compose(b, a) is None


def test_compose_refuses_where_the_naive_chain_is_wrong():
    """The conditions matter: tv1d with a box of per-entry bounds, or norm2 clipped after its prox,
    give chains that miss the optimum (by more than 1e-2 here), and compose refuses the first."""
    rng = np.random.default_rng(13)
    v, t = np.array([0.0, 0.1, 2.0, 2.1, 1.0]), 1.0
    lo, hi = np.array([-1, -1, -1, 0.5, -1.0]), np.array([1, 1, 1.5, 3, 1.0])
    assert compose(P("tv1d"), P("box", lo, hi)) is None
    naive = np.clip(np.asarray(P("tv1d").prox(jnp.asarray(v), t)), lo, hi)
    ref = cvx_prox([T["tv"](1), T["box"](lo, hi)], (5,), v, t)
    assert np.max(np.abs(naive - ref)) > 1e-2
    v = rng.normal(size=M)
    wrong = np.maximum(np.asarray(P("norm2").prox(jnp.asarray(v), 1.0)), 0)
    ref = cvx_prox([T["l2"](1), T["nonneg"]()], (M,), v, 1.0)
    assert np.max(np.abs(wrong - ref)) > 1e-2
    right = compose(P("norm2"), P("nonneg")).prox(jnp.asarray(v), 1.0)
    assert_argmin(right, [T["l2"](1), T["nonneg"]()], v, 1.0, atol=1e-4)
