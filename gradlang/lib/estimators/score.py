"""The score-function (REINFORCE) estimator with a choice of baseline."""

from __future__ import annotations

import contextvars
from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpyro.distributions as nd

from . import ESTIMATORS, Estimator, base_of

BASELINES = ("none", "rloo", "greedy", "ema")

# The running averages of the ema baselines: the loop passes {"in": {site: (avg, weight)}} and
# collects the updated ones in "out" (state that lives in the optimisation loop's carry).
EMA_STATE: contextvars.ContextVar[dict | None] = contextvars.ContextVar("ema_state", default=None)


def _stop(x):
    return jax.lax.stop_gradient(x)


def _mode(dist):
    """The most probable value (NumPyro leaves ``mode`` undefined for some discrete families)."""
    base = base_of(dist)
    if isinstance(base, (nd.CategoricalLogits, nd.CategoricalProbs)):
        mode = jnp.argmax(base.logits, axis=-1)
    elif isinstance(base, (nd.BernoulliLogits, nd.BernoulliProbs)):
        mode = (base.logits > 0).astype(jnp.int32)
    else:
        try:
            mode = base.mode
        except NotImplementedError:
            mode = base.mean
    return jnp.broadcast_to(mode, dist.shape())


@dataclass(frozen=True)
class Score(Estimator):
    baseline_kind: str = "none"
    decay: float = 0.9

    def draw(self, dist, key):
        value = _stop(dist.sample(key))
        return value, jnp.sum(dist.log_prob(value))

    def baseline(self, f: jnp.ndarray, site: str = "") -> jnp.ndarray:
        if self.baseline_kind == "rloo":
            k = f.shape[0]
            return (jnp.sum(f) - f) / (k - 1) if k > 1 else jnp.zeros_like(f)
        if self.baseline_kind == "ema":
            state = EMA_STATE.get()
            if state is None:  # no loop state (a one-off evaluation): no baseline
                return jnp.zeros_like(f)
            avg, weight = state["in"].get(site, (jnp.zeros(()), jnp.zeros(())))
            b = jnp.where(weight > 0, avg / jnp.maximum(weight, 1e-12), 0.0)  # bias-corrected average
            state["out"][site] = (self.decay * avg + (1 - self.decay) * jnp.mean(f),
                                  self.decay * weight + (1 - self.decay))
            return jnp.broadcast_to(_stop(b), f.shape)
        return jnp.zeros_like(f)

    def apply(self, dist, key, cont, scores, name):
        if self.baseline_kind != "greedy":
            return super().apply(dist, key, cont, scores, name)
        # self-critical: the baseline is the program's value at the distribution's mode
        value, logq = self.draw(dist, key)
        f = cont(value)
        b = _stop(cont(_stop(_mode(dist))))
        return f + _stop(f - b) * (logq - _stop(logq))


@ESTIMATORS.register("score", cite="Williams, Simple statistical gradient-following algorithms for connectionist "
                                   "reinforcement learning, Machine Learning 1992; leave-one-out baseline: Kool, "
                                   "van Hoof & Welling, Buy 4 REINFORCE samples, get a baseline for free!, 2019; "
                                   "greedy (self-critical) baseline: Rennie et al., CVPR 2017")
def score(baseline="none"):
    """Score function: grad E_q[f] = E_q[grad f + (f - b) grad log q(z)], b independent of z.

    baseline = none (b = 0) | rloo (b_k = mean of the other particles' f; K > 1) | greedy (f at the
    mode of q) | ema(decay) (a bias-corrected running mean of f over the steps, decay 0.9 default).
    """
    decay = 0.9
    if isinstance(baseline, tuple):  # ema(0.95)
        baseline, args = baseline
        decay = float(args[0]) if args else decay
    if baseline not in BASELINES:
        raise ValueError(f"unknown baseline '{baseline}'; known: {', '.join(BASELINES)}")
    return Score("score", baseline, decay)
