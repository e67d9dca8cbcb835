"""Iterate averaging: an Optax wrapper that keeps an exponential moving average of the parameters.

    xbar_t = beta xbar_{t-1} + (1 - beta) x_t,   beta = 1 - 1/horizon,   reported: xbar_t / (1 - beta^t)

(the bias-corrected average, as Adam corrects its moments).  Averaging the iterates of a
stochastic-gradient method (Polyak & Juditsky, SIAM J. Control Optim. 30, 1992; Ruppert 1988)
removes most of the noise a constant step size leaves in the last iterate; the exponential
weights keep the average over about the last ``horizon`` steps, so it is valid whenever the run
stops (a stopping rule may end it at any window).  The updates pass through unchanged: only
``final_params`` reports the average.  Not a registry entry: the pass choose_vi_defaults composes
it into the settings it chooses for a VI program.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax


class AveragedState(NamedTuple):
    inner: Any
    total: Any            # sum_s beta^(t-s) (1 - beta) x_s over the iterates so far
    weight: jnp.ndarray   # sum_s beta^(t-s) (1 - beta) = 1 - beta^t: the bias correction


def averaged(opt: optax.GradientTransformation, horizon: int) -> optax.GradientTransformationExtraArgs:
    """``opt``, its iterates averaged over about the last ``horizon`` steps (``final_params``)."""
    inner, beta = optax.with_extra_args_support(opt), 1.0 - 1.0 / float(horizon)

    def init(params):
        return AveragedState(inner.init(params), jax.tree.map(jnp.zeros_like, params), jnp.zeros((), jnp.float32))

    def update(updates, state, params=None, **extra):
        updates, inner_state = inner.update(updates, state.inner, params, **extra)
        new = optax.apply_updates(params, updates)
        total = jax.tree.map(lambda m, x: beta * m + (1.0 - beta) * x, state.total, new)
        return updates, AveragedState(inner_state, total, beta * state.weight + (1.0 - beta))

    return optax.GradientTransformationExtraArgs(init, update)


def average_of(state: AveragedState, params):
    """The bias-corrected average of the iterates; ``params`` before the first update."""
    some = state.weight > 0
    return jax.tree.map(lambda m, p: jnp.where(some, m / jnp.where(some, state.weight, 1.0), p), state.total, params)
