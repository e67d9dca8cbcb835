"""Constraint methods: how the constraints a projection does not meet enter the solve.  One entry a
file, registered under its file stem (``solve { constraints = NAME(...) }``).

Every constraint is ``g(x) <= 0`` or ``g(x) == 0`` (elementwise).  A multiplier method is a small
frozen module with

* ``init(shapes) -> state``: its state (multipliers, penalty weight, ...) for constraints of those
  shapes, a pytree of arrays kept in the solver state;
* ``loss(gs, kinds, state) -> scalar``: the term added to the loss the primal step minimises;
* ``update(state, gs, kinds, stationarity) -> state``: the dual step, with the ``g`` of the primal
  step and ``stationarity``, the norm of the primal gradient of the loss plus the method's term;
* ``multipliers(state) -> list | None``: the multipliers to report (None for a penalty).

``projection`` is listed here too; the pass ``constraints_to_method`` turns it into an after-update.
"""

from __future__ import annotations

import jax.numpy as jnp

from ...registry import Registry

CONSTRAINT_METHODS = Registry("constraint method", "gradlang.lib.constraints")


def violation(g, kind: str):
    """How far ``g <= 0`` / ``g == 0`` is from holding, entry by entry (0 where it holds)."""
    return jnp.maximum(g, 0.0) if kind == "le" else jnp.abs(g)


def largest_violation(gs, kinds) -> jnp.ndarray:
    return jnp.max(jnp.stack([jnp.max(violation(g, k)) for g, k in zip(gs, kinds)]))
