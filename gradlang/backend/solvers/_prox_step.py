"""One proximal-gradient step with a backtracking line search (Beck & Teboulle, A Fast Iterative
Shrinkage-Thresholding Algorithm for Linear Inverse Problems, SIAM J. Imaging Sci. 2009, sec. 3).

From the point ``y`` with smooth value ``f(y)`` and gradient ``g``, the step ``t`` is halved until
``x = prox_{t h}(y - t g)`` satisfies the sufficient-decrease condition

    f(x) <= f(y) + <g, x - y> + ||x - y||^2 / (2 t),

which holds for every ``t <= 1/L`` (L the Lipschitz constant of the gradient), so at most
``log2(t0 L)`` halvings happen over a whole run.  The first step is estimated from the change of the
gradient along a small move, ``t0 = ||d|| / ||g(x0 + d) - g(x0)||``, and only shrinks afterwards.
"""

from __future__ import annotations

import weakref

import equinox as eqx
import jax
import jax.numpy as jnp

from ..compile_options import loop_options
from ..traced import tracing

SHRINK = 0.5
MAX_HALVINGS = 40


def _dot(a: dict, b: dict):
    return sum(jnp.vdot(a[k], b[k]) for k in a)


def _sq(a: dict):
    return _dot(a, a)


def first_step(smooth, x: dict, g: dict):
    """``||d|| / ||grad f(x + d) - grad f(x)||`` with ``d`` a small move against the gradient: the
    inverse of a local estimate of L (1 when the gradient does not change)."""
    norm = jnp.sqrt(_sq(g))
    scale = 1e-4 * jnp.maximum(1.0, jnp.sqrt(_sq(x))) / jnp.maximum(norm, 1e-12)
    d = jax.tree.map(lambda gi: -scale * gi, g)
    g2 = jax.grad(smooth)(jax.tree.map(lambda a, b: a + b, x, d))
    change = jnp.sqrt(_sq(jax.tree.map(lambda a, b: a - b, g2, g)))
    t = jnp.sqrt(_sq(d)) / jnp.maximum(change, 1e-30)
    return jnp.where((change > 0) & jnp.isfinite(t), t, 1.0).astype(jnp.float32)


def backtrack(smooth, prox, y: dict, f_y, g: dict, t):
    """``(x, f(x), t, ||x - y||²)``: the accepted point, its smooth value, its step, and its
    squared distance from y, which the sufficient-decrease condition needs (see the module doc)
    and the prox-gradient mapping's norm reuses."""
    def candidate(t):
        x = prox(jax.tree.map(lambda yi, gi: yi - t * gi, y, g), t)
        diff = jax.tree.map(lambda a, b: a - b, x, y)
        moved = _sq(diff)
        bound = f_y + _dot(g, diff) + moved / (2.0 * t)
        f_x = smooth(x)
        return x, f_x, moved, f_x <= bound + 1e-6 * jnp.abs(f_y)  # float32 round-off in the comparison

    def cond(c):
        return ~c[4] & (c[5] <= MAX_HALVINGS)

    def body(c):
        t = c[2] * SHRINK
        x, f_x, moved, ok = candidate(t)
        return x, f_x, t, moved, ok, c[5] + 1

    # a do-while: the first pass tries t itself (the candidate is traced once, which halves the
    # step's compiled size); the placeholders are never returned
    start = (y, f_y, t / SHRINK, jnp.zeros((), f_y.dtype), jnp.asarray(False), 0)
    x, f_x, t, moved, _, _ = jax.lax.while_loop(cond, body, start)
    return x, f_x, t, moved


def mapping_norm(moved, t):
    """The norm of the prox-gradient mapping (y - x) / t, from ``moved`` = ||x - y||²: zero exactly
    at a minimiser."""
    return jnp.sqrt(moved) / t


_INITS: dict[int, tuple] = {}


# XLA options for an init without loops (a gradient or two, some norms): it runs once a fit, so its
# compilation is what costs, and without LLVM's optimisations XLA:CPU compiles fista's lasso init in
# 0.13 s of CPU instead of 0.21 (min of 3, busy machine); with split_prox's compile=fast on top
# (``fast_compile``), 0.05 s.  Not O0 for inits that iterate (admm's and pdhg's power iterations),
# whose run would pay for it: they take compile=fast alone.  (``compile_options``.)


def compiled_init(solver, u: dict, data: dict, options: dict | None = None):
    """``solver._init(u, data)`` as one compiled function, kept for the solver's lifetime (a program
    fitted again reuses it).  Run eagerly, an init's dozens of primitives (gradients, power
    iterations, a factorisation) would each be compiled on a first fit: seconds, on a busy CPU.
    ``options``: XLA compiler options (``compile_options.once``), which only a top-level ``jit`` takes: inside
    another trace (a test's or a bilevel program's jit) the init is traced into it instead."""
    if tracing(u, data):
        return solver._init(u, data)
    hit = _INITS.get(id(solver))
    if hit is None or hit[0]() is not solver:
        ref = weakref.ref(solver)  # the cache must not keep the solver (and its data) alive
        hit = (ref, jax.jit(lambda u, data: ref()._init(u, data), **({"compiler_options": options} if options else {})))
        _INITS[id(solver)] = hit
        weakref.finalize(solver, _INITS.pop, id(solver), None)
    return hit[1](u, data)


class StopsOnTol(eqx.Module):
    """What the prox-family solvers (proximal, fista, admm, pdhg) share: one objective, stopping
    only with ``tol`` (their state's ``converged``, set by each method's own optimality measure),
    the iterate ``u`` as the parameters, the XLA options split_prox chose for the loop, and a
    step's values taken at the iterate it returns (``values_at_new_state``)."""

    values_at_new_state = True

    @property
    def compile_options(self) -> dict:
        """``fast_compile()`` under split_prox's ``compile=fast`` (``loop_options``): the
        runtime's loop compiles its chunk with them, the init too."""
        split = self.model.program.split
        return loop_options(dict(split.options).get("compile") if split is not None else None)

    def objective(self, stats: dict):
        return stats["values"][..., 0]

    @property
    def may_terminate(self) -> bool:
        return self.tol is not None

    def terminate(self, state):
        return state.converged if self.tol is not None else jnp.asarray(False)

    def params(self, state) -> dict:
        return state.u
