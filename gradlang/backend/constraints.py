"""The constraints of a plan, evaluated: each ``g`` at the parameters, and the projections.

``constraints_to_method`` wrote ``ConstraintsPlan``: the projections onto simple sets (after each
update) and the constraints left to a multiplier method.  Here the ``g`` of every constraint is
evaluated at the parameters in their domains (for the method's loss and dual update, and for the
report of violations), and each projection's set is built from its arguments and applied.
"""

from __future__ import annotations

import jax.numpy as jnp

from ..ir.plan import ConstraintsPlan
from .evaluate import Evaluator


class ConstraintEval:
    """Built inside a trace: arguments of the sets and the constraints may read data."""

    def __init__(self, model, data: dict):
        self.model, self.data = model, data
        self.plan: ConstraintsPlan = model.program.constrained

    def _ev(self, u: dict) -> Evaluator:
        program = self.model.program
        return Evaluator(program, self.data, self.model.constrain(u), program.consts, self.model.dims)

    def values(self, u: dict, constraints) -> list:
        """``g`` of each constraint at ``u`` (unconstrained), as float32 arrays."""
        ev = self._ev(u)
        return [jnp.asarray(ev.eval(c.g), jnp.float32) for c in constraints]

    def tangent(self, u: dict, grads: dict) -> dict:
        """Each projected parameter's gradient replaced by the gradient mapping (u - P(u - e g)) / e
        for a small e: the gradient projected onto the set's tangent cone at u.  An adaptive
        optimizer (Adam) that rescales coordinates would otherwise stop wherever its rescaled step
        is normal to the set, not where the gradient is (Bertsekas, Nonlinear Programming, sec. 2.3);
        with the mapping its fixed points are the constrained stationary points."""
        if not self.plan.projections:
            return grads
        import jax

        out = dict(grads)
        for p in self.plan.projections:
            x, g = u[p.param], grads[p.param]
            e = 1e-3 * (1.0 + jnp.sqrt(jnp.sum(x**2))) / (jnp.sqrt(jnp.sum(g**2)) + 1e-12)
            e = jax.lax.stop_gradient(e)
            moved = self.project({**u, p.param: x - e * g})[p.param]
            out[p.param] = (x - moved) / e
        return out

    def project(self, u: dict) -> dict:
        """Every projected parameter put onto its set (its domain is real: u is the value)."""
        if not self.plan.projections:
            return u
        from ..lib.prox import PROXES

        ev = self._ev(u)
        out = dict(u)
        for p in self.plan.projections:
            args = [ev.eval(a) for a in p.args]
            out[p.param] = PROXES.get(p.set, p.span).value(*args).prox(u[p.param], 1.0).astype(u[p.param].dtype)
        return out
