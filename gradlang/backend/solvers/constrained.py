"""The constrained direction: a plan's multiplier method added to its direction.

With constraints left to a multiplier method (``ConstraintsPlan.rest``), the primal step follows the
gradient of ``loss + method.loss(g, multipliers)`` (the base direction's, e.g. a Jacobian-descent
aggregate, plus the constraint term's gradient), and the dual step ``method.update`` runs after it
with the same ``g``: simultaneous gradient descent-ascent, or the augmented Lagrangian's periodic
multiplier update.  The method's state lives in the direction's running state under
``"constraints"``.  Projections are the solver's after-update (``GradientSolver.after``).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax

from ...check.config_value import config_args
from ...lib.constraints import CONSTRAINT_METHODS, largest_violation
from ..build import Model
from ..constraints import ConstraintEval

STATE = "constraints"


def method_of(model: Model):
    """The multiplier method of the plan, built with its settings (None: projections only)."""
    plan = model.program.constrained
    if plan is None or plan.method is None or not plan.rest:
        return None
    args, kwargs = config_args(plan.method)
    return CONSTRAINT_METHODS.get(plan.method.value).value(*args, **kwargs)


class ConstrainedDirection(eqx.Module):
    base: Any
    model: Model = eqx.field(static=True)
    method: Any = eqx.field(static=True)

    @property
    def stochastic(self) -> bool:
        return getattr(self.base, "stochastic", False)

    def _kinds(self):
        return [c.kind for c in self.model.program.constrained.rest]

    def init(self, u: dict, data: dict, est: dict) -> dict:
        est = self.base.init(u, data, est) if hasattr(self.base, "init") else est
        gs = jax.eval_shape(lambda u: ConstraintEval(self.model, data).values(u, self.model.program.constrained.rest), u)
        return {**est, STATE: self.method.init([g.shape for g in gs])}

    def __call__(self, u, data, key, est):
        inner = {k: v for k, v in est.items() if k != STATE}
        loss, values, grads, new = self.base(u, data, key, inner)
        state, kinds = est[STATE], self._kinds()
        rest = self.model.program.constrained.rest
        evaluate = ConstraintEval(self.model, data)

        def term(u):
            gs = evaluate.values(u, rest)
            return self.method.loss(gs, kinds, state), gs

        (extra, gs), more = jax.value_and_grad(term, has_aux=True)(u)
        grads = jax.tree.map(lambda a, b: a + b, grads, more)
        return loss + extra, values, grads, {**new, STATE: self.method.update(state, gs, kinds)}

    def value_fn(self, data, key, est):
        inner = {k: v for k, v in est.items() if k != STATE}
        return self.base.value_fn(data, key, inner)


def violations(model: Model, u: dict, data: dict) -> list:
    """``g`` of every constraint of the program at ``u``, in source order."""
    return ConstraintEval(model, data).values(u, model.program.constraints)


def largest(model: Model, u: dict, data: dict):
    """The largest violation over every constraint (the history's ``violation``)."""
    return largest_violation(violations(model, u, data), [c.kind for c in model.program.constraints])
