"""Exact enumeration of a finite support."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import ESTIMATORS, Estimator, base_of


@dataclass(frozen=True)
class Enum(Estimator):
    def check(self, dist) -> str | None:
        base = base_of(dist)
        if not getattr(base, "has_enumerate_support", False):
            return f"enum needs a finite support, and {type(base).__name__} has none to enumerate"
        if dist.batch_shape or dist.event_shape:
            return "enum works on one scalar site at a time"
        return None

    def apply(self, dist, key, cont, scores, name):
        values = dist.enumerate_support(expand=False).reshape(-1)
        weights = jnp.exp(dist.log_prob(values))
        return jnp.sum(weights * jax.vmap(cont)(values))


@ESTIMATORS.register("enum", cite="exact marginalisation over a finite support, as in Pyro's TraceEnum_ELBO "
                                  "(Obermeyer et al., Tensor Variable Elimination for Plated Factor Graphs, ICML 2019)")
def enum():
    """E_q[f] = sum_v q(v) f(v) over the support: exact value and gradient, no variance."""
    return Enum("enum")
