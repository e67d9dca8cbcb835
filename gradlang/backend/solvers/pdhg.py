"""PDHG, the primal-dual hybrid gradient method (Chambolle & Pock), with a smooth part (Condat & Vũ).

For ``minimize f(x) + g(x) + sum_i h_i(K_i x)``, f split_prox's smooth part, g the prox terms on the
parameters themselves (composed as under fista) and h_i = c_i f_i the dual terms (``c * f(K @ p)``,
and terms on a parameter whose terms do not compose), with a dual variable y_i each:

    x+   = prox_{tau g}(x - tau (grad f(x) + K'y))
    y_i+ = prox_{sigma h_i*}(y_i + sigma (K_i (2 x+ - x) + c_i))

(c_i a term's offset, f(K @ p + c): the conjugate of v -> h(v + c) is h*(y) - <y, c>, whose prox
at u is prox_{sigma h*}(u + sigma c))

(Chambolle & Pock, A first-order primal-dual algorithm for convex problems with applications to
imaging, J. Math. Imaging Vis. 2011, Alg. 1 with theta = 1; the gradient of f in the primal step is
Condat's, A primal-dual splitting method for convex optimization involving Lipschitzian, proximable
and linear composite terms, J. Optim. Theory Appl. 2013, and Vũ, Adv. Comput. Math. 2013).  The
prox of the conjugate comes from Moreau's decomposition, prox_{s h*}(y) = y - s prox_{h/s}(y/s)
(``Prox.prox_conj``).  It converges when 1/tau - sigma ||K||^2 > L/2 (Condat 2013, Thm 3.1), L the
Lipschitz constant of grad f: ||K||^2 and L are estimated at init by the power method (``_splitting``;
L is exact for a quadratic f, and the curvature at the initial point otherwise), and

    sigma = 1 / ||K||,   tau = 0.95 / (L/2 + sigma ||K||^2)

balances the two steps (with no dual term, tau = 1.9 / L: a proximal gradient step).

``tol`` stops on the primal and dual residuals of the step (Goldstein, Esser & Baraniuk, Adaptive
primal-dual hybrid gradient methods, 2013, eqs. 7-8, with Condat's gradient term),

    p = (x - x+)/tau - K'(y - y+) - (grad f(x) - grad f(x+)),   d = (y - y+)/sigma + K(x+ - x),

elements of the optimality conditions' subdifferentials at (x+, y+), zero exactly at a saddle point:
it stops when both norms have fallen below tol times the larger of their first values.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ..build import Model
from . import SOLVERS
from ._prox_step import StopsOnTol, compiled_init
from ._splitting import DualTerms, hessian_curvature, tree_norm

SAFETY = 0.95


class PDHGState(NamedTuple):
    u: dict              # x
    y: tuple             # the dual variables y_i
    grad: dict           # grad f(x), reused by the next step
    tau: jnp.ndarray
    sigma: jnp.ndarray
    first: jnp.ndarray   # max(||p||, ||d||) at the first step (for tol)
    converged: jnp.ndarray


class PDHGSolver(StopsOnTol):
    model: Model = eqx.field(static=True)
    tol: float | None = eqx.field(static=True)
    keyed = False

    def _smooth(self, data):
        return lambda u: self.model.smooth_loss(u, data)

    def init(self, u: dict, data: dict, key=None) -> PDHGState:
        return compiled_init(self, u, data, self.compile_options)

    def _init(self, u: dict, data: dict) -> PDHGState:
        terms = DualTerms(self.model, data)
        lipschitz = hessian_curvature(self._smooth(data), u)
        norm_sq = terms.norm_sq(u)
        sigma = 1.0 / jnp.sqrt(jnp.maximum(norm_sq, 1e-30))
        tau = SAFETY / jnp.maximum(lipschitz / 2 + sigma * norm_sq, 1e-30)
        zero = jnp.zeros((), jnp.float32)
        return PDHGState(u, terms.zeros(u), jax.grad(self._smooth(data))(u), tau.astype(jnp.float32),
                         sigma.astype(jnp.float32), zero, jnp.asarray(False))

    def step(self, state: PDHGState, data: dict, t_index, key=None):
        terms = DualTerms(self.model, data)
        tau, sigma = state.tau, state.sigma
        kty = terms.adjoint(state.y, state.u)
        v = jax.tree.map(lambda x, g, a: x - tau * (g + a), state.u, state.grad, kty)
        x = terms.prox.apply(v, tau)
        bar = jax.tree.map(lambda a, b: 2 * a - b, x, state.u)
        y = tuple(e.prox_conj(yi + sigma * k, sigma) for e, yi, k in zip(terms.entries, state.y, terms.apply(bar)))
        grad = jax.grad(self._smooth(data))(x)
        dy = tuple(a - b for a, b in zip(state.y, y))
        kt_dy = terms.adjoint(dy, x)
        p = jax.tree.map(lambda a, b, c, g0, g1: (a - b) / tau - c - (g0 - g1), state.u, x, kt_dy, state.grad, grad)
        k_dx = terms.linear(jax.tree.map(lambda a, b: a - b, x, state.u))
        d = tuple(a / sigma + b for a, b in zip(dy, k_dx))
        p_norm, d_norm = tree_norm(p), tree_norm(d)
        first = jnp.where(t_index == 0, jnp.maximum(p_norm, d_norm), state.first)
        converged = state.converged
        if self.tol is not None:
            converged = converged | (jnp.maximum(p_norm, d_norm) <= self.tol * first)
        value = self.model.objective_values(x, data)
        return PDHGState(x, y, grad, tau, sigma, first, converged), {"values": value}


@SOLVERS.register("pdhg", cite="Chambolle & Pock, A first-order primal-dual algorithm for convex problems with "
                               "applications to imaging, J. Math. Imaging Vis. 40, 2011; Condat, J. Optim. Theory "
                               "Appl. 158, 2013; Vũ, Adv. Comput. Math. 38, 2013")
def pdhg(model: Model, opt=None, batch: int | None = None, tol: float | None = None) -> PDHGSolver:
    """Chambolle-Pock / Condat-Vũ primal-dual splitting; steps from power-method norm estimates."""
    return PDHGSolver(model, tol)
