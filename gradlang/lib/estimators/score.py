"""The score-function (REINFORCE) estimator with a choice of baseline."""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp

from . import ESTIMATORS, Estimator

BASELINES = ("none", "rloo")


@dataclass(frozen=True)
class Score(Estimator):
    baseline_kind: str = "none"

    def draw(self, dist, key):
        value = jax.lax.stop_gradient(dist.sample(key))
        return value, jnp.sum(dist.log_prob(value))

    def baseline(self, f: jnp.ndarray) -> jnp.ndarray:
        if self.baseline_kind == "rloo":
            k = f.shape[0]
            if k < 2:
                return jnp.zeros_like(f)
            return (jnp.sum(f) - f) / (k - 1)
        return jnp.zeros_like(f)


@ESTIMATORS.register("score", cite="Williams, Simple statistical gradient-following algorithms for connectionist "
                                   "reinforcement learning, Machine Learning 1992; leave-one-out baseline: Kool, "
                                   "van Hoof & Welling, Buy 4 REINFORCE samples, get a baseline for free!, 2019")
def score(baseline="none"):
    """Score function: grad E_q[f] = E_q[grad f + (f - b) grad log q(z)], b independent of z.

    baseline = none (b = 0) | rloo (b_k = mean of the other particles' f, unbiased for K > 1).
    """
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline '{baseline}'; known: {', '.join(BASELINES)}")
    return Score("score", baseline)
