import jax
import jax.numpy as jnp
import optax

from . import OPTIMIZERS, LookaheadWrapState


@OPTIMIZERS.register(
    "lookahead",
    cite="Zhang, Lucas, Hinton & Ba, Lookahead Optimizer: k steps forward, 1 step back, NeurIPS 2019",
)
def lookahead(opt, sync_period=5, slow_step_size=0.5, reset_state=False):
    """Lookahead: ``opt`` takes fast steps; every k of them the slow weights move toward the fast.

    fast <- opt step (k = sync_period times);  slow <- slow + alpha (fast - slow);  fast <- slow
    Works on plain params (the fast weights); the slow weights live in the state, and
    final_params returns them.  Nothing after it in a chain may alter its updates.
    """
    inner, sync_period = optax.with_extra_args_support(opt), int(sync_period)
    optax.lookahead(inner, sync_period, slow_step_size, reset_state)  # validates the arguments

    def init(params):
        slow = jax.tree.map(jnp.copy, params)  # a distinct buffer, so params can be donated
        both = optax.LookaheadParams(fast=params, slow=slow)
        return LookaheadWrapState(optax.lookahead(inner, sync_period, slow_step_size).init(both), slow)

    def update(updates, state, params=None, **extra):
        # optax.lookahead calls its fast optimiser without extra args: bind them for this step.
        fast = optax.GradientTransformation(inner.init, lambda u, s, p=None: inner.update(u, s, p, **extra))
        la = optax.lookahead(fast, sync_period, slow_step_size, reset_state)
        both = optax.LookaheadParams(fast=params, slow=state.slow)
        upd, la_state = la.update(updates, state.inner, both)
        return upd.fast, LookaheadWrapState(la_state, optax.apply_updates(state.slow, upd.slow))

    return optax.GradientTransformationExtraArgs(init, update)
