"""Optimisers and optimiser wrappers over Optax: one entry a file, registered under its file stem.

Conventions every entry follows (the runtime relies on them):

* An entry is a plain function with explicit parameters and defaults, usable positionally in
  declaration order.  The learning rate is always ``lr`` and may be a float or a schedule (a
  callable step -> value, see ``gradlang.lib.schedules``).  It returns an
  ``optax.GradientTransformationExtraArgs``.
* Wrappers take optimisers.  ``chain(*opts)`` and ``lookahead(opt, ...)`` require them (first
  parameter ``opts``/``opt``; ``takes_optimizers(fn)`` is true for exactly these).  The gradient
  transforms clip, clip_by_global_norm, adaptive_grad_clip, add_noise take their numbers first
  and an optional ``opt`` last: alone (``clip_by_global_norm(1.0)``) they are the Optax
  transform, to put before an optimiser in a chain as in ``chain(clip_by_global_norm(1),
  adamw(...))``; with ``opt`` they are exactly ``chain(transform, opt)``.  Alone as the whole
  optimiser they would step *along* the (clipped) gradient: the checker should refuse that.
* Update-call convention: the runtime always calls
  ``opt.update(grads, state, params, value=loss, grad=grads, value_fn=f)`` with ``f`` the loss as
  a function of ``params`` alone (same batch as ``grads``; it must be differentiable, twice
  for sophia).  Every entry and every chain of entries accepts these keywords; lbfgs (zoom
  linesearch) uses all three, sophia uses ``value_fn`` (for its Hutchinson Hessian estimate).
  ``needs_value_fn(opt, params)`` says whether a built optimiser actually evaluates ``value_fn``.
* Parameters are a plain pytree everywhere, lookahead included: its slow weights live in
  its state (``LookaheadWrapState``).  Nothing after a lookahead or schedule_free in a chain may
  change the updates (clip etc. go *before*, which is what the wrappers do).
* At the end of a run report ``final_params(opt_state, params)``, not ``params``: the
  schedule-free evaluation point x for schedule_free, the slow weights for lookahead.
"""

from __future__ import annotations

import inspect
from typing import Any, NamedTuple

import jax
import optax
import optax.contrib

from ...registry import Registry

OPTIMIZERS = Registry("optimizer", "gradlang.lib.optimizers")


class LookaheadWrapState(NamedTuple):
    """State of the ``lookahead`` wrapper: Optax's lookahead state plus the slow parameters."""

    inner: optax.LookaheadState
    slow: Any


def _find(state, types) -> list:
    """Every sub-state of one of ``types`` inside ``state``, outermost and leftmost first."""
    nodes = jax.tree.leaves(state, is_leaf=lambda x: isinstance(x, types))
    return [n for n in nodes if isinstance(n, types)]


def final_params(opt_state, params):
    """The parameters to report at the end of a run.

    The first schedule-free or lookahead state found in ``opt_state`` (pre-order, so the
    outermost wins) decides: schedule-free gives ``optax.contrib.schedule_free_eval_params``
    (the averaged sequence x, not the gradient point y), lookahead gives its slow weights.
    The iterate average of ``_averaged`` (chosen by choose_vi_defaults) gives the average.
    Any other optimiser gives ``params`` unchanged.
    """
    from ._averaged import AveragedState, average_of

    for s in _find(opt_state, (optax.contrib.ScheduleFreeState, LookaheadWrapState, AveragedState)):
        if isinstance(s, AveragedState):
            return average_of(s, params)
        if isinstance(s, LookaheadWrapState):
            return s.slow
        return optax.contrib.schedule_free_eval_params(s, params)
    return params


_VALUE_FN_STATES = (
    optax.ScaleByZoomLinesearchState,
    optax.ScaleByBacktrackingLinesearchState,
    optax.contrib.SophiaState,
)


def needs_value_fn(opt, params) -> bool:
    """Whether ``opt`` (anywhere inside chains/wrappers) evaluates ``value_fn``: lbfgs, sophia.

    Only shapes are traced (``jax.eval_shape``), nothing is computed.  The runtime passes
    ``value_fn`` regardless; this tells it whether ``f`` must be a faithful, deterministic,
    differentiable loss of the parameters (same batch as the gradient) and may be re-evaluated.
    """
    return bool(_find(jax.eval_shape(opt.init, params), _VALUE_FN_STATES))


def takes_optimizers(fn) -> bool:
    """Whether an entry requires optimisers (chain, lookahead): first parameter ``opt``/``*opts``."""
    first = next(iter(inspect.signature(fn).parameters.values()), None)
    return first is not None and first.name in ("opt", "opts")


def gradient_transform(name: str, make, opt, *numbers):
    """The gradient transforms' common tail: ``make()`` alone (for a chain) or chained before ``opt``."""
    if any(isinstance(x, optax.GradientTransformation) for x in numbers):
        raise TypeError(f"{name}() takes its numbers first and the optimizer last, "
                        f"e.g. {name}(1.0, adam()) or chain({name}(1.0), adam())")
    if opt is not None and not isinstance(opt, optax.GradientTransformation):
        raise TypeError(f"{name}(): opt must be an optimizer, not {opt!r}")
    tx = optax.with_extra_args_support(make())
    return tx if opt is None else optax.chain(tx, opt)
