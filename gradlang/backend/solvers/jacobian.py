"""The Jacobian-descent direction: the aggregator's combination of the objectives' gradients.

For a vector objective with losses ``l(u) = s * values(u)`` (``s`` the signs of the plan's
``Aggregate``), one reverse pass per entry gives the Jacobian ``J = dl/du`` (m x n, the parameters
flattened); the aggregator ``A`` of the plan maps it to the direction ``d = A(J)`` (for most
entries ``d = wᵀ J`` with weights from the Gramian ``J Jᵀ``), which the Optax update then takes as
the gradient (Quinton & Rey, Jacobian Descent for Multi-Objective Optimization, 2024).  A stateful
aggregator keeps its state in the direction's running state under ``"aggregator"``; a stochastic one
draws from the step's key.  For ``minimize each(v)`` the entries are those of v (one per row of
the minibatch with ``batch``), and the value logged is their mean.

The direction is a flat vector, so the solver runs an elementwise optimizer on the parameters
raveled into one vector (``flat``, choose_optimizer's ``raveled``): the same numbers as leaf by leaf, but one
fused update instead of one per parameter array (Adam on the six arrays of a two-layer MLP cost
its Jacobian-descent step 4%, m = 2, n = 2e4, XLA:CPU).
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ..build import Model

STATE = "aggregator"  # the aggregator's state in the direction's running state
GRAMIAN = "gramian"  # the last step's Gramian J Jᵀ, for the history's conflict report (``conflicts``)


class JacobianDirection(eqx.Module):
    """``(loss, values, direction, state)`` as ``Gradient`` returns, the direction ``A(J)``."""

    model: Model = eqx.field(static=True)
    aggregator: Any = eqx.field(static=True)
    rows: Any = eqx.field(static=True, default=None)  # (u, data, J, unravel) -> J: each row's constrained direction
    # keep each step's Gramian in the running state (``GRAMIAN``): the history's conflict matrix
    # at a log point is then the cosines of the gradients that step aggregated, on its minibatch
    # and draw, instead of a Jacobian of its own over the full data at every log point (which,
    # with ``batch``, cost a fit many steps' worth: 2 objectives, N = 2e5, batch 256: +68%)
    conflicts: bool = eqx.field(static=True, default=False)

    @property
    def stochastic(self) -> bool:
        return bool(self.aggregator.stochastic)

    @property
    def flat(self) -> bool:
        """Whether the solver runs its optimizer on the raveled parameters: choose_optimizer's
        decision (``OptimizerSpec.raveled``)."""
        spec = getattr(self.model.program, "optimizer", None)
        return bool(getattr(spec, "raveled", False))

    def init(self, u: dict, data: dict, est: dict) -> dict:
        flat, _ = ravel_pytree(u)
        m = len(self.model.program.objectives)
        if self.model.each:  # the number of entries: v's length on the data the steps see
            m = jax.eval_shape(lambda u: self.model.loss_and_values(u, data, jax.random.PRNGKey(0), est,
                                                                    entries=True)[1][0], u).shape[0]
        out = {**est, STATE: self.aggregator.init(m, flat.shape[0], flat.dtype)}
        if self.conflicts:
            out[GRAMIAN] = jnp.zeros((m, m), flat.dtype)
        return out

    def __call__(self, u, data, key, est):
        signs = jnp.asarray(self.model.program.aggregate.signs, jnp.float32)
        inner = _inner(est)
        flat, unravel = ravel_pytree(u)
        draw = key if self.model.stochastic else None

        def losses(x):
            loss, (values, new) = self.model.loss_and_values(unravel(x), data, draw, inner, entries=True)
            return signs * values, (loss, values, new)

        J, (loss, values, new) = jax.jacrev(losses, has_aux=True)(flat)
        if self.rows is not None:  # the aggregator sees each objective's constrained direction
            J = self.rows(u, data, J, unravel)
        if self.model.each:  # as written: the entries' mean
            values = jnp.mean(values, keepdims=True)
        agg_key = jax.random.fold_in(key, 1) if key is not None and self.stochastic else None
        d, state, G = self.aggregator.with_gramian(J, est.get(STATE, ()), agg_key)
        new = {**new, STATE: state}
        if self.conflicts:
            new[GRAMIAN] = G.astype(est[GRAMIAN].dtype)
        return loss, values, unravel(d), new

    def value_fn(self, data, key, est):
        inner = _inner(est)
        draw = key if self.model.stochastic else None
        return lambda p: self.model.loss_and_values(p, data, draw, inner)[0]


def _inner(est: dict) -> dict:
    """The estimators' running state, without the direction's own entries."""
    return {k: v for k, v in est.items() if k not in (STATE, GRAMIAN)}
