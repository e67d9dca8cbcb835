"""ADMM, the alternating direction method of multipliers, for ``minimize f(x) + sum_i h_i(K_i x)``.

f is split_prox's smooth part and h_i = c_i f_i its dual terms (every prox term, written
``c * f(p)`` or ``c * f(K @ p)``).  With z_i = K_i x as a copy and scaled duals w_i (Boyd, Parikh,
Chu, Peleato & Eckstein, Distributed Optimization and Statistical Learning via the Alternating
Direction Method of Multipliers, Found. Trends Mach. Learn. 2011, sec. 3.1.1):

    x+   = argmin_x  f(x) + (rho/2) sum_i ||K_i x + c_i - z_i + w_i||^2   (c_i a term's offset, or 0)
    z_i+ = prox_{h_i / rho}(K_i x+ + c_i + w_i)
    w_i+ = w_i + K_i x+ + c_i - z_i+

The x-update is the one choice (split_prox decides it, ``--emit ir:split_prox`` shows it):

* ``cholesky``: the smooth part is a quadratic of real parameters, f(x) = x'Hx/2 + g'x + const, so
  the x-update solves  (H + rho sum_i K_i'K_i) x = rho sum_i K_i'(z_i - w_i - c_i) - g.  The matrix is built
  once by automatic differentiation (the Hessian of f(x) + (rho/2) sum_i ||K_i x||^2 over the
  flattened parameters), Cholesky-factored at init and kept in the state, so a step is two
  triangular solves (Boyd et al. 2011, sec. 4.2.4, "caching factorizations").  A dense factor: n
  parameters cost n^2 floats (n of a few thousand).  Lineax's Cholesky solver would factor again at
  every call, which is why the factor is JAX's own (``jax.scipy.linalg.cho_factor``), held here.
* ``cg``: a quadratic smooth part whose terms are all on parameters themselves (K_i = I, the
  nuclear norm of a completed matrix, say): the same system, (H + rho I) x = ..., solved without a
  factorisation by conjugate gradients (Hestenes & Stiefel 1952; Boyd et al. 2011, sec. 4.3.4, which
  recommends it with a warm start) on the Newton step of the x-update's objective from the last x,
  matrix-free (H by Hessian-vector products, ``jax.linearize`` of f's gradient).  H + rho I has its
  eigenvalues in [rho, L + rho], so a handful of iterations reach ``CG_RTOL`` (two where H is a
  0/1 mask); a dense factor would cost n^2 floats and an n^3 factorisation at every change of rho.
* ``gradient``: any other smooth part (a logistic loss, say): ``INNER`` gradient steps on the
  x-update's objective, warm-started at the last x, step 1/L from the power method on its Hessian
  at the initial point (f's curvature plus rho ||K||^2).  An inexact ADMM (Eckstein & Bertsekas,
  Math. Program. 1992, converges when the x-update errors are summable; warm starts shrink them
  as the iterates settle).

rho starts at ``admm(rho = ...)`` (default 1) and is balanced against the residuals for the first
``BALANCE_UNTIL`` steps (``ADMMSolver.balance``): a rho off by orders of magnitude (a term weighted
1 / N, say) otherwise costs thousands of steps.

``tol`` stops on the primal and dual residuals (Boyd et al. 2011, sec. 3.3.1),
r = (K_i x - z_i)_i and s = rho K'(z - z_prev):  ||r|| <= sqrt(p) eps_abs + tol max(||Kx||, ||z||)
and ||s|| <= sqrt(n) eps_abs + tol ||rho K'w||, with eps_abs = tol / 10 (p, n: the sizes of z and x).
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..build import Model
from . import SOLVERS
from ._prox_step import StopsOnTol, compiled_init
from ._splitting import DualTerms, hessian_curvature, tree_norm

INNER = 20
CG_RTOL, CG_MAXITER = 1e-6, 100  # the x-update's conjugate gradients: residual / right-hand side, and a cap
EPS_ABS = 0.1  # times tol
MU, TAU = 10.0, 2.0  # residual balancing: the imbalance that changes rho, and the factor it changes by
BALANCE_EVERY, BALANCE_UNTIL = 10, 500


class ADMMState(NamedTuple):
    u: dict              # x
    z: tuple             # the copies z_i of K_i x
    w: tuple             # the scaled duals w_i (y_i / rho)
    rho: jnp.ndarray     # the penalty, balanced (see ``balance``)
    factor: jnp.ndarray  # cholesky: the factor of the x-update's matrix at rho; gradient: [L_f, ||K||^2]; cg: unused
    residuals: jnp.ndarray  # [||r||, ||s||] of the last step
    converged: jnp.ndarray


class ADMMSolver(StopsOnTol):
    model: Model = eqx.field(static=True)
    tol: float | None = eqx.field(static=True)
    rho: float = eqx.field(static=True)
    x_solve: str = eqx.field(static=True)  # split_prox's x_update: cholesky | cg | gradient
    balanced: bool = eqx.field(static=True, default=True)
    keyed = False

    def _smooth(self, data):
        return lambda u: self.model.smooth_loss(u, data)

    def init(self, u: dict, data: dict, key=None) -> ADMMState:
        return compiled_init(self, u, data, self.compile_options)

    def _init(self, u: dict, data: dict) -> ADMMState:
        terms = DualTerms(self.model, data)
        rho = jnp.asarray(self.rho, jnp.float32)
        if self.x_solve == "cholesky":
            factor = self.factorise(rho, terms, data, u)
        elif self.x_solve == "cg":
            factor = jnp.zeros((2,), jnp.float32)
        else:
            factor = jnp.stack([hessian_curvature(self._smooth(data), u), terms.norm_sq(u)])
        inf = jnp.full((2,), jnp.inf, jnp.float32)
        return ADMMState(u, terms.apply(u), terms.zeros(u), rho, factor.astype(jnp.float32), inf,
                         jnp.asarray(False))

    def factorise(self, rho, terms: DualTerms, data: dict, u: dict):
        """The Cholesky factor of H + rho sum_i K_i'K_i, the Hessian of f(x) + (rho/2) sum_i ||K_i x||^2."""
        flat, unravel = ravel_pytree(u)

        def augmented(x):
            return self._smooth(data)(unravel(x)) + rho / 2 * sum(
                jnp.sum(jnp.square(k)) for k in terms.linear(unravel(x)))

        matrix = jax.hessian(augmented)(jnp.zeros_like(flat))
        return jax.scipy.linalg.cho_factor(matrix, lower=True)[0].astype(jnp.float32)

    def x_update(self, state: ADMMState, terms: DualTerms, data: dict) -> dict:
        targets = tuple(zi - wi for zi, wi in zip(state.z, state.w))
        if self.x_solve == "cg":
            return self.conjugate_gradients(state, terms, data, targets)
        if self.x_solve == "cholesky":
            flat, unravel = ravel_pytree(state.u)
            g0 = ravel_pytree(jax.grad(self._smooth(data))(unravel(jnp.zeros_like(flat))))[0]
            rhs = state.rho * ravel_pytree(terms.adjoint(terms.without_offsets(targets), state.u))[0] - g0
            return unravel(jax.scipy.linalg.cho_solve((state.factor, True), rhs))

        def objective(u):
            gap = sum(jnp.sum(jnp.square(k - t)) for k, t in zip(terms.apply(u), targets))
            return self._smooth(data)(u) + state.rho / 2 * gap

        size = 1.0 / jnp.maximum(state.factor[0] + state.rho * state.factor[1], 1e-12)

        def step(_, u):
            g = jax.grad(objective)(u)
            return jax.tree.map(lambda a, b: a - size * b, u, g)

        return jax.lax.fori_loop(0, INNER, step, state.u)

    def conjugate_gradients(self, state: ADMMState, terms: DualTerms, data: dict, targets: tuple) -> dict:
        """x + d with (H + rho K'K) d = -grad F(x), F the x-update's objective f(x) + (rho/2) sum_i
        ||K_i x + c_i - t_i||^2 (a quadratic: one Newton step is its minimiser), by CG from d = 0."""
        def objective(u):
            gap = sum(jnp.sum(jnp.square(k - t)) for k, t in zip(terms.apply(u), targets))
            return self._smooth(data)(u) + state.rho / 2 * gap

        g, hessian = jax.linearize(jax.grad(objective), state.u)
        d, _ = jax.scipy.sparse.linalg.cg(hessian, jax.tree.map(jnp.negative, g), tol=CG_RTOL, maxiter=CG_MAXITER)
        return jax.tree.map(jnp.add, state.u, d)

    def step(self, state: ADMMState, data: dict, t_index, key=None):
        terms = DualTerms(self.model, data)
        rho = state.rho
        x = self.x_update(state, terms, data)
        kx = terms.apply(x)
        z = tuple(e.prox(k + wi, 1.0 / rho) for e, k, wi in zip(terms.entries, kx, state.w))
        w = tuple(wi + k - zi for wi, k, zi in zip(state.w, kx, z))
        r = tree_norm(tuple(k - zi for k, zi in zip(kx, z)))
        s = rho * tree_norm(terms.adjoint(tuple(a - b for a, b in zip(z, state.z)), x))
        converged = state.converged
        if self.tol is not None:
            eps_abs = EPS_ABS * self.tol
            p = sum(zi.size for zi in z)
            n = sum(jnp.size(v) for v in jax.tree.leaves(x))
            primal_ok = r <= jnp.sqrt(p) * eps_abs + self.tol * jnp.maximum(tree_norm(kx), tree_norm(z))
            dual_ok = s <= jnp.sqrt(n) * eps_abs + self.tol * rho * tree_norm(terms.adjoint(w, x))
            converged = converged | (primal_ok & dual_ok)
        new_rho, w, factor = self.balance(t_index, r, s, rho, w, state.factor, terms, data, x)
        value = self.model.objective_values(x, data)
        return ADMMState(x, z, w, new_rho, factor, jnp.stack([r, s]), converged), {"values": value}

    def balance(self, t_index, r, s, rho, w, factor, terms: DualTerms, data: dict, x: dict):
        """Residual balancing (Boyd et al. 2011, sec. 3.4.1; He, Yang & Wang, J. Optim. Theory Appl.
        2000): every ``BALANCE_EVERY`` steps until step ``BALANCE_UNTIL`` (then rho is fixed, which
        keeps ADMM's convergence), rho *= 2 when ||r|| > 10 ||s||, rho /= 2 when ||s|| > 10 ||r||,
        the scaled duals rescaled to keep y = rho w; a Cholesky factor is recomputed for the new rho."""
        if not self.balanced:
            return rho, w, factor
        due = (t_index % BALANCE_EVERY == BALANCE_EVERY - 1) & (t_index < BALANCE_UNTIL)
        scale = jnp.where(due & (r > MU * s), TAU, jnp.where(due & (s > MU * r), 1.0 / TAU, 1.0))
        new_rho = rho * scale
        w = tuple(wi / scale for wi in w)
        if self.x_solve == "cholesky":
            factor = jax.lax.cond(scale != 1.0, lambda: self.factorise(new_rho, terms, data, x), lambda: factor)
        return new_rho, w, factor


@SOLVERS.register("admm", cite="Boyd, Parikh, Chu, Peleato & Eckstein, Distributed Optimization and Statistical "
                               "Learning via the Alternating Direction Method of Multipliers, Found. Trends Mach. "
                               "Learn. 3(1), 2011; Gabay & Mercier 1976; Glowinski & Marrocco 1975")
def admm(model: Model, opt=None, batch: int | None = None, tol: float | None = None) -> ADMMSolver:
    """Scaled-form ADMM with z_i = K_i x for each prox term (rho and the x-update from split_prox)."""
    options = dict(model.program.split.options)
    return ADMMSolver(model, tol, float(options.get("rho", 1.0)), options.get("x_update", "gradient"),
                      options.get("rho_update") == "balance")
