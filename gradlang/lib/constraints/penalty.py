"""The quadratic penalty method."""

from __future__ import annotations

from dataclasses import dataclass

import jax.numpy as jnp

from . import CONSTRAINT_METHODS, violation


@dataclass(frozen=True)
class Penalty:
    rho: float

    def init(self, shapes):
        return ()

    def loss(self, gs, kinds, state):
        return 0.5 * self.rho * sum(jnp.sum(violation(g, k) ** 2) for g, k in zip(gs, kinds))

    def update(self, state, gs, kinds, stationarity=None):
        return state

    def multipliers(self, state):
        return None


@CONSTRAINT_METHODS.register("penalty", cite="Nocedal & Wright, Numerical Optimization, 2nd ed., Springer 2006, "
                                             "sec. 17.1 (the quadratic penalty method)")
def penalty(rho=10.0):
    """f(x) + rho/2 (sum ||max(g, 0)||^2 + sum ||h||^2): feasible only as rho grows (violation O(1/rho))."""
    if not float(rho) > 0:
        raise ValueError("rho must be positive")
    return Penalty(float(rho))
