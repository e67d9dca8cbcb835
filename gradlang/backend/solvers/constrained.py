"""The constrained direction: a plan's multiplier method added to its direction.

With constraints left to a multiplier method (``ConstraintsPlan.rest``), the primal step follows the
gradient of ``loss + method.loss(g, multipliers)`` (the base direction's, e.g. a Jacobian-descent
aggregate, plus the constraint term's gradient), and the dual step ``method.update`` runs after it
with the same ``g``: simultaneous gradient descent-ascent, or the augmented Lagrangian's periodic
multiplier update.  The method's state lives in the direction's running state under
``"constraints"``.  Projections are the solver's after-update (``GradientSolver.after``).

A method that ``extrapolates`` (``lagrangian(variant = extragradient)``) is stepped as Cooper's
``ExtrapolationConstrainedOptimizer``: both players first step to a look-ahead point (the primal
with the program's own optimizer, whose look-ahead state is kept under ``"extrapolation"``, the dual
with the method's update), and the step each then takes from where it was uses the gradients at
the look-ahead point (Korpelevich 1976; Gidel et al., A variational inequality perspective on
generative adversarial networks, ICLR 2019).  A method that is ``optimistic`` (``lagrangian(variant
= optimistic)``, ReLOAD) gives the primal the optimistic gradient 2 g_t - g_{t-1} of the Lagrangian
too (its last gradient kept under ``"optimism"``), as its dual step does with the violations.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ...check.config_value import config_args
from ...lib.constraints import CONSTRAINT_METHODS, largest_violation
from ..build import Model
from ..constraints import ConstraintEval

STATE = "constraints"
LOOKAHEAD = "extrapolation"  # the primal optimizer's state for the look-ahead steps
OPTIMISM = "optimism"  # the last primal gradient, for the optimistic primal step
OWN = (STATE, LOOKAHEAD, OPTIMISM)  # the keys of the running state that are this direction's


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
    lookahead: Any = eqx.field(static=True, default=None)  # the primal optimizer, for extrapolation
    optimistic: bool = eqx.field(static=True, default=False)  # the primal steps along 2 g_t - g_{t-1}

    @classmethod
    def of(cls, base, model: Model, method, opt) -> ConstrainedDirection:
        """The direction for ``method``; ``opt`` (the solver's Optax update) takes the primal
        look-ahead step of a method that extrapolates."""
        return cls(base, model, method, opt if getattr(method, "extrapolates", False) else None,
                   bool(getattr(method, "optimistic", False)))

    @property
    def stochastic(self) -> bool:
        return getattr(self.base, "stochastic", False)

    def _kinds(self):
        return [c.kind for c in self.model.program.constrained.rest]

    def init(self, u: dict, data: dict, est: dict) -> dict:
        est = self.base.init(u, data, est) if hasattr(self.base, "init") else est
        gs = jax.eval_shape(lambda u: ConstraintEval(self.model, data).values(u, self.model.program.constrained.rest), u)
        out = {**est, STATE: self.method.init([g.shape for g in gs])}
        if self.lookahead is not None:
            out[LOOKAHEAD] = self.lookahead.init(u)
        if self.optimistic:
            out[OPTIMISM] = {"previous": jax.tree.map(jnp.zeros_like, u), "started": jnp.asarray(False)}
        return out

    def _at(self, u, data, key, inner, state):
        """``(loss, values, grads, base state, g)`` at ``u``: the base direction plus the gradient of
        the method's term at the multipliers of ``state``."""
        loss, values, grads, new = self.base(u, data, key, inner)
        kinds, rest = self._kinds(), self.model.program.constrained.rest
        evaluate = ConstraintEval(self.model, data)

        def term(u):
            gs = evaluate.values(u, rest)
            return self.method.loss(gs, kinds, state), gs

        (extra, gs), more = jax.value_and_grad(term, has_aux=True)(u)
        return loss + extra, values, jax.tree.map(lambda a, b: a + b, grads, more), new, gs

    def __call__(self, u, data, key, est):
        inner = {k: v for k, v in est.items() if k not in OWN}
        state, kinds = est[STATE], self._kinds()
        loss, values, grads, new, gs = self._at(u, data, key, inner, state)
        if self.optimistic:  # ReLOAD: 2 g_t - g_{t-1} (g_{-1} = g_0: the first step is plain)
            last = est[OPTIMISM]
            previous = jax.tree.map(lambda p, g: jnp.where(last["started"], p, g), last["previous"], grads)
            new = {**new, OPTIMISM: {"previous": grads, "started": jnp.asarray(True)}}
            step = jax.tree.map(lambda g, p: 2.0 * g - p, grads, previous)
            return loss, values, step, {**new, STATE: self.method.update(state, gs, kinds, _norm(grads))}
        if self.lookahead is None:  # simultaneous descent-ascent
            return loss, values, grads, {**new, STATE: self.method.update(state, gs, kinds, _norm(grads))}
        # extragradient: the look-ahead (u', lambda'), then the gradients there make the step
        step, ahead_state = self.lookahead.update(grads, est[LOOKAHEAD], u, value=loss, grad=grads,
                                                  value_fn=self.base.value_fn(data, key, inner))
        ahead = self.method.update(state, gs, kinds)
        _, _, grads, new, gs = self._at(optax.apply_updates(u, step), data, key, new, ahead)
        # loss and values reported at u (as Cooper's roll-out); the dual steps from lambda, not lambda'
        return loss, values, grads, {**new, STATE: self.method.update(state, gs, kinds, _norm(grads)),
                                     LOOKAHEAD: ahead_state}

    def value_fn(self, data, key, est):
        inner = {k: v for k, v in est.items() if k not in OWN}
        return self.base.value_fn(data, key, inner)


@dataclass(frozen=True)
class TangentRows:
    """For several objectives under a non-linear aggregator (Jacobian descent) and projections:
    each row of the Jacobian (one objective's gradient) replaced by its gradient mapping onto the
    projected parameters' sets (``ConstraintEval.tangent``), so the aggregator resolves conflicts
    between the directions the projected step can take.  On the raw gradients, a conflict-free
    aggregate d (g_i . d >= 0) can lose that property once projected: the normal components the
    projection removes may be what made it conflict-free, and an objective then rises.

    A multiplier method's term is not an objective to be traded off: its gradient is added to the
    aggregate (``ConstrainedDirection``), not to each row, where a conflict-averse aggregator could
    cancel it (two objectives pulling opposite ways along a constraint's normal would leave the
    violation without a restoring force)."""

    model: Model

    @classmethod
    def of(cls, model: Model) -> TangentRows | None:
        plan = model.program.constrained
        return cls(model) if plan is not None and plan.projections else None

    def __call__(self, u: dict, data: dict, J, unravel):
        from jax.flatten_util import ravel_pytree

        evaluate = ConstraintEval(self.model, data)
        return jax.vmap(lambda row: ravel_pytree(evaluate.tangent(u, unravel(row)))[0])(J)


def _norm(tree):
    """||grad_x L||: the stationarity of the primal at the current multipliers (the augmented
    Lagrangian's inner test)."""
    return jnp.sqrt(sum(jnp.sum(jnp.square(x)) for x in jax.tree.leaves(tree)))


def violations(model: Model, u: dict, data: dict) -> list:
    """``g`` of every constraint of the program at ``u``, in source order."""
    return ConstraintEval(model, data).values(u, model.program.constraints)


def report(model: Model, u: dict, data: dict, est: dict | None) -> dict:
    """Per constraint of the program: its largest violation at ``u`` and, for one left to a
    multiplier method (its state in ``est``), its multiplier (None for a penalty or a projection)."""
    import numpy as np

    program = model.program
    gs = violations(model, u, data)
    method, rest = method_of(model), [c.label for c in program.constrained.rest]
    multipliers = method.multipliers(est[STATE]) if method is not None and est is not None else None
    out = {}
    for c, g in zip(program.constraints, gs):
        g = np.asarray(g, np.float64)
        worst = np.maximum(g, 0.0) if c.kind == "le" else np.abs(g)
        entry = {"violation": float(np.max(worst)) if worst.size else 0.0, "multiplier": None}
        if multipliers is not None and c.label in rest:
            m = np.asarray(multipliers[rest.index(c.label)], np.float64)
            entry["multiplier"] = float(m) if m.ndim == 0 else m.tolist()
        out[c.label] = entry
    return out


def largest(model: Model, u: dict, data: dict):
    """The largest violation over every constraint (the history's ``violation``)."""
    return largest_violation(violations(model, u, data), [c.kind for c in model.program.constraints])
