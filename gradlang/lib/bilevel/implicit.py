"""Implicit differentiation: the hypergradient from the implicit function theorem.

At the lower solution ``y*`` (``∇_y G(x, y*) = 0``), differentiating the optimality condition gives
``dy*/dx = -[∇²_yy G]⁻¹ ∇²_yx G``, so

    ∇φ(x) = ∇_x F(x, y*) - ∇²_xy G(x, y*) v,    ∇²_yy G(x, y*) v = ∇_y F(x, y*)

(Pedregosa, Hyperparameter optimization with approximate gradient, ICML 2016; Lorraine,
Vicol & Duvenaud, Optimizing millions of hyperparameters by implicit differentiation, AISTATS
2020).  The lower solution comes from the lower level's own solve (warm-started from the last
upper step) and is held fixed; the linear system is solved matrix-free from Hessian-vector
products:

* ``cg``: conjugate gradients (Lineax ``CG``) on the operator ``v -> ∇²_yy G v``, ``iters`` steps
  at most, for a positive definite lower Hessian (a strongly convex lower level);
* ``neumann``: the truncated Neumann series ``v = η Σ_{q<iters} (I - η H)^q ∇_y F`` with
  ``η = 1 / L``, ``L`` an upper bound of H's largest eigenvalue from ``power`` power iterations
  (× 1.1), as in BO-REP (Gong et al., 2024) and Lorraine et al. (2020);
* ``auto``: a direct solve (Lineax ``LU`` of the materialised Hessian; where that fails, a singular
  Hessian, the least-norm least-squares solution by Lineax ``SVD``) when the lower level has at most
  ``direct`` unknowns, else ``cg``.

A constrained lower level (``subject to`` in the block, ``g(x, y) <= 0`` / ``h = 0``): the lower
solve is projected onto ``{y: g(x, y) <= 0}`` after each step, and the implicit function theorem is
applied to its KKT system on the active set ``A`` (the equalities and the rows with ``g >= -tol``),
``∇_y L = 0, g_A = 0`` with ``L = G + μᵀg`` (μ by least squares on A): the adjoint system

    [ ∇²_yy L   J_Aᵀ ] [v]   [∇_y F]
    [ J_A        0   ] [w] = [  0  ],     ∇φ = ∇_x F − ∇²_xy L v − (∂g_A/∂x)ᵀ w,

solved directly (Lineax LU of the materialised matrix; an inactive row's ``w`` is pinned to zero).
This holds where the active set is stable: strict complementarity, every active inequality with a
multiplier above ``tol_active``.  Where one is not (a constraint only just active, ``μ <= tol_active``),
the state's ``"degenerate"`` flag of that constraint is set and the run warns at the constraint
suggesting ``lv_hba``.

The linear solve's relative residual ``‖H v - ∇_y F‖ / ‖∇_y F‖`` is kept in the state
(``"residual"``, and the run's worst in ``"worst_residual"``): a singular lower Hessian (a lower
level with a set of solutions) leaves it large, and the run warns (``backend.solvers.hypergradient``).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import lineax as lx
from jax.flatten_util import ravel_pytree

from . import (
    BILEVEL,
    cross,
    hvp,
    lagrangian,
    multipliers,
    project_feasible,
    require,
    stop,
    tree_axpy,
    tree_dot,
)

SOLVERS = ("auto", "cg", "neumann")


@dataclass(frozen=True)
class Implicit:
    solver: str = "auto"
    iters: int = 50
    tol: float = 1e-6
    direct: int = 500
    power: int = 20
    tol_active: float = 1e-4

    constrained = True

    def init(self, problem, y0) -> dict:
        state = {"y": y0, "residual": jnp.zeros((), jnp.float32), "worst_residual": jnp.zeros((), jnp.float32)}
        if not problem.constrained:
            return state
        problem.constraints(problem.x0, y0)
        return {**state, "degenerate": jnp.zeros((len(problem.ranges),), bool)}

    def reported(self, state):
        return state["y"]

    def step(self, problem, x, state):
        if problem.constrained:
            return self.kkt_step(problem, x, state)
        y, _ = problem.solve(lambda v: problem.lower(x, v), stop(state["y"]))
        y = stop(y)
        (loss, aux), (gx, gy) = jax.value_and_grad(problem.upper, argnums=(0, 1), has_aux=True)(x, y)
        H = hvp(problem, x, y)
        v = self.linear_solve(H, gy)
        r = tree_axpy(-1.0, gy, H(v))
        residual = jnp.sqrt(tree_dot(r, r) / jnp.maximum(tree_dot(gy, gy), 1e-30))
        g = tree_axpy(-1.0, cross(problem, x, y, v), gx)
        return loss, aux, g, {"y": y, **residuals(residual, state)}

    def kkt_step(self, problem, x, state, several: bool = False):
        """The hypergradient through the KKT system of a constrained lower level (module doc); with
        ``several``, ``(aux, J, state)`` with one row per upper objective (one adjoint solve each,
        batched, of the same KKT matrix)."""
        xs = stop(x)

        def onto_lower_set(v):
            return project_feasible(problem, xs, v, 1, move_x=False)[1]  # once a step: the solve repeats it

        y, _ = problem.solve(lambda v: problem.lower(xs, v), stop(state["y"]), after=onto_lower_set)
        y = stop(y)
        mu = stop(multipliers(problem, xs, y, self.tol_active))
        g, equality = problem.constraints(xs, y)
        eq = jnp.asarray(equality)
        active = eq | (g >= -self.tol_active)
        if several:
            (Gx, Gy), (loss, aux) = jax.jacrev(problem.terms, argnums=(0, 1), has_aux=True)(x, y)
        else:  # one row
            (loss, aux), (gx, gy) = jax.value_and_grad(problem.upper, argnums=(0, 1), has_aux=True)(x, y)
            Gx, Gy = jax.tree.map(lambda a: a[None], gx), jax.tree.map(lambda a: a[None], gy)
        flat, unravel = ravel_pytree(y)
        n, m = flat.shape[0], g.shape[0]

        def grad_L(x_, w_):
            return ravel_pytree(jax.grad(lambda v: lagrangian(problem, x_, v, mu))(unravel(w_)))[0]

        H = jax.jacfwd(lambda w_: grad_L(xs, w_))(flat)
        J = jax.jacrev(lambda w_: problem.constraints(xs, unravel(w_))[0])(flat) * active[:, None]
        K = jnp.block([[H, J.T], [J, jnp.diag(jnp.where(active, 0.0, 1.0))]])
        rhs = jax.vmap(lambda b: jnp.concatenate([ravel_pytree(b)[0], jnp.zeros((m,), flat.dtype)]))(Gy)
        sol = jax.vmap(lambda r: direct_solve(K, r))(rhs)
        v, w = sol[:, :n], sol[:, n:] * active
        residual = jnp.max(jnp.linalg.norm(sol @ K.T - rhs, axis=1) / jnp.maximum(jnp.linalg.norm(rhs, axis=1), 1e-30))

        def through(v, w):  # ∇_x [<∇_y L(x, y), v> + wᵀ g(x, y)] = ∇²_xy L v + (∂g/∂x)ᵀ w
            return jax.grad(lambda x_: jnp.vdot(grad_L(x_, flat), v) + jnp.vdot(w, problem.constraints(x_, y)[0]))(xs)

        hyper = jax.tree.map(lambda a, b: a - b, Gx, jax.vmap(through)(v, w))
        rows = active & ~eq & (mu <= self.tol_active)  # no stable active set
        degenerate = state["degenerate"] | jnp.stack([jnp.any(rows[a:b]) for a, b in problem.ranges])
        new = {"y": y, **residuals(residual, state), "degenerate": degenerate}
        if several:
            return (loss, aux), hyper, new
        return loss, aux, jax.tree.map(lambda a: a[0], hyper), new

    def rows(self, problem, x, state):
        """Several upper objectives ``l_i``: ``(aux, J, state)`` with ``J``'s row i the hypergradient of
        ``l_i``, ``∇_x l_i - ∇²_xy G v_i`` with ``∇²_yy G v_i = ∇_y l_i``: one lower solve, then one
        adjoint linear solve per objective (batched, ``vmap``); through the KKT system where the
        lower level is constrained."""
        if problem.constrained:
            return self.kkt_step(problem, x, state, several=True)
        y, _ = problem.solve(lambda v: problem.lower(x, v), stop(state["y"]))
        y = stop(y)
        (Jx, Jy), (loss, aux) = jax.jacrev(problem.terms, argnums=(0, 1), has_aux=True)(x, y)
        H = hvp(problem, x, y)
        V = jax.vmap(lambda b: self.linear_solve(H, b))(Jy)
        R = jax.vmap(lambda v, b: tree_axpy(-1.0, b, H(v)))(V, Jy)
        sq = lambda t: sum(jnp.sum(jnp.reshape(a, (a.shape[0], -1)) ** 2, axis=1) for a in jax.tree.leaves(t))
        residual = jnp.max(jnp.sqrt(sq(R) / jnp.maximum(sq(Jy), 1e-30)))
        J = jax.tree.map(lambda a, b: a - b, Jx, jax.vmap(lambda v: cross(problem, x, y, v))(V))
        return (loss, aux), J, {"y": y, **residuals(residual, state)}

    def solution(self, objective, solve, steps, p, v0):
        """A nested lower level's solution ``v*(p) = argmin_v objective(p, v)`` (``p``: the levels
        above it), by ``solve`` from ``v0``, whose derivative is the implicit function theorem's,
        ``dv* = -[∇²_vv G]⁻¹ ∇²_vp G dp`` (a ``custom_jvp``: the rule is itself differentiable, so the
        level above can take the Hessian of its objective through ``v*`` for its own implicit step)."""
        def grad_v(p_, v_):
            return jax.grad(objective, argnums=1)(p_, v_)

        @jax.custom_jvp
        def argmin(p_, v0_):
            v, _ = solve(lambda v: objective(stop(p_), v), stop(v0_))
            return stop(v)

        @argmin.defjvp
        def argmin_jvp(primals, tangents):
            p_, v0_ = primals
            dp, _ = tangents
            v = argmin(p_, v0_)
            b = jax.jvp(lambda q: grad_v(q, v), (p_,), (dp,))[1]
            dv = self.differentiable_solve(lambda t: jax.jvp(lambda w: grad_v(p_, w), (v,), (t,))[1], b)
            return v, jax.tree.map(jnp.negative, dv)

        return argmin(p, v0)

    def differentiable_solve(self, H, b):
        """``H⁻¹ b`` by a solve that is linear in ``b`` and differentiable in ``H`` (no fallback
        branch): a dense ``jnp.linalg.solve`` up to ``direct`` unknowns (``auto``), else CG or
        Neumann as written."""
        flat, unravel = ravel_pytree(b)
        if self.solver == "neumann":
            return neumann(H, b, self.iters, self.power)
        if self.solver == "auto" and flat.shape[0] <= self.direct:
            matrix = jax.jacfwd(lambda f: ravel_pytree(H(unravel(f)))[0])(jnp.zeros_like(flat))
            return unravel(jnp.linalg.solve(matrix, flat))
        op = lx.FunctionLinearOperator(H, jax.eval_shape(lambda: b), tags=lx.positive_semidefinite_tag)
        return lx.linear_solve(op, b, lx.CG(rtol=self.tol, atol=self.tol, max_steps=self.iters), throw=False).value

    def linear_solve(self, H, b):
        """``v`` with ``H v = b`` by the method's solver."""
        flat, unravel = ravel_pytree(b)
        solver = self.solver
        if solver == "auto":
            solver = "direct" if flat.shape[0] <= self.direct else "cg"
        if solver == "neumann":
            return neumann(H, b, self.iters, self.power)
        structure = jax.eval_shape(lambda: b)
        if solver == "direct":
            matrix = jax.jacfwd(lambda f: ravel_pytree(H(unravel(f)))[0])(flat)
            return unravel(direct_solve(matrix, flat))
        op = lx.FunctionLinearOperator(H, structure, tags=lx.positive_semidefinite_tag)
        cg = lx.CG(rtol=self.tol, atol=self.tol, max_steps=self.iters)
        return lx.linear_solve(op, b, cg, throw=False).value


def direct_solve(matrix, b):
    """``matrix⁻¹ b`` by Lineax LU; where that is not finite (a singular matrix), the least-squares
    solution of least norm (Lineax SVD), so that the run goes on and warns at its end (the residual)."""
    op = lx.MatrixLinearOperator(matrix)
    v = lx.linear_solve(op, b, lx.LU(), throw=False).value
    return jax.lax.cond(jnp.all(jnp.isfinite(v)), lambda: v,
                        lambda: lx.linear_solve(op, b, lx.SVD(), throw=False).value)


def residuals(residual, state) -> dict:
    """This step's relative residual and the worst over the run (not finite: infinite)."""
    residual = residual.astype(jnp.float32)
    worst = jnp.maximum(state["worst_residual"], jnp.where(jnp.isfinite(residual), residual, jnp.inf))
    return {"residual": residual, "worst_residual": worst}


def neumann(H, b, iters: int, power: int):
    """``η Σ_{q<iters} (I - η H)^q b`` with ``η = 1 / (1.1 λ_max)``, λ_max by power iteration."""
    def power_step(_, u):
        w = H(u)
        return jax.tree.map(lambda a: a / jnp.sqrt(jnp.maximum(tree_dot(w, w), 1e-30)), w)

    u = jax.lax.fori_loop(0, power, power_step, jax.tree.map(lambda a: jnp.ones_like(a), b))
    lam = tree_dot(u, H(u)) / jnp.maximum(tree_dot(u, u), 1e-30)
    eta = 1.0 / (1.1 * jnp.maximum(lam, 1e-12))

    def term(_, c):
        p, v = c
        return tree_axpy(-eta, H(p), p), tree_axpy(1.0, p, v)

    _, v = jax.lax.fori_loop(0, iters, term, (b, jax.tree.map(jnp.zeros_like, b)))
    return jax.tree.map(lambda a: eta * a, v)


@BILEVEL.register("implicit", cite="Pedregosa, ICML 2016; Lorraine, Vicol & Duvenaud, AISTATS 2020; "
                  "Lineax (Rader, Lyons & Kidger, 2023)")
def implicit(solver: str = "auto", iters: int = 50, tol: float = 1e-6, direct: int = 500, power: int = 20,
             tol_active: float = 1e-4):
    """Implicit function theorem: ∇φ = ∇_x F - ∇²_xy G [∇²_yy G]⁻¹ ∇_y F at the lower solution."""
    require(solver in SOLVERS, f"solver must be one of {', '.join(SOLVERS)}, not {solver!r}")
    require(isinstance(iters, int) and iters >= 1, "iters must be a whole number >= 1")
    require(tol > 0, "tol must be positive")
    require(tol_active > 0, "tol_active must be positive")
    return Implicit(solver, int(iters), float(tol), int(direct), int(power), float(tol_active))
