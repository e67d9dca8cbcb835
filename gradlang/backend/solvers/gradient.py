"""The gradient solver: a direction (the gradient of the loss), then an Optax update.

A step draws its minibatch and Monte-Carlo key from the step's key, takes the direction
(value_and_grad of ``Model.loss_and_values``, which also returns each objective's value as
written and the estimators' next running state), and applies the update
``opt.update(grads, state, u, value=, grad=, value_fn=)`` (the update-call convention of
``gradlang.lib.optimizers``).  Later parts (an after-update such as a prox or a projection, a dual
update of multipliers) compose in the same place, between ``update`` and the new state.

``solve { tol = ... }`` stops the solver when the loss changed little over the last ``WINDOW``
steps: ``|f_t - f_{t-W}| <= tol * max(|f_t|, |f_{t-W}|, 1)`` with ``f_t`` the loss at step ``t``
(relative for losses above 1 in size, absolute below, as SciPy's L-BFGS-B ``ftol`` test).  Looking
over a window rather than one step keeps a single small step (a momentum method turning round)
from stopping the run.  Only deterministic objectives take ``tol``: the checker refuses it on a
Monte-Carlo or minibatched objective, whose noise would stop the run at random.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.flatten_util import ravel_pytree

from ...lib.optimizers import final_params
from ...passes.objectives_to_aggregate import LINEAR
from ..build import Model, batch_axis
from . import SOLVERS

WINDOW = 10  # steps over which the loss must have settled for ``tol``
CONFLICT_SEED = 0  # of the rows the history's conflict matrix reads under ``batch`` (report_rows)


def conflict_rows(n_rows: int, batch: int) -> np.ndarray:
    """The ``batch`` row indices (of ``n_rows``) that ``GradientSolver.report_rows`` keeps: drawn
    on the host, once, so they are a constant of the loop, not a threefry in it."""
    return np.random.default_rng(CONFLICT_SEED).integers(0, n_rows, batch).astype(np.int32)


class GradientState(NamedTuple):
    """Everything a step carries: arrays only, so a checkpoint stores it leaf by leaf."""

    u: dict            # unconstrained parameters
    opt_state: Any     # the Optax state
    est: dict          # the direction's running state: the estimators' (ema baselines), a stateful
                       # aggregator's; {} for most programs
    recent: jnp.ndarray  # [WINDOW] the last losses, a ring buffer indexed by t % WINDOW ([0] without tol)
    converged: jnp.ndarray  # bool: the tol test held


class Gradient(eqx.Module):
    """The direction part: loss, each objective's value, the gradient, the estimators' next state."""

    model: Model = eqx.field(static=True)

    def __call__(self, u, data, key, est):
        (loss, (values, est)), grads = jax.value_and_grad(self.model.loss_and_values, has_aux=True)(
            u, data, key, est)
        return loss, values, grads, est

    def value_fn(self, data, key, est):
        """The loss as a function of the parameters alone, on the same batch and draw (lbfgs, sophia)."""
        return lambda p: self.model.loss_and_values(p, data, key, est)[0]


class GradientSolver(eqx.Module):
    """Minimise the loss with an Optax update along its gradient (a direction, then an update)."""

    model: Model = eqx.field(static=True)
    direction: Gradient
    update: optax.GradientTransformationExtraArgs = eqx.field(static=True)
    batched: tuple = eqx.field(static=True)
    n_rows: int = eqx.field(static=True)
    batch: int | None = eqx.field(static=True)
    tol: float | None = eqx.field(static=True)
    stop: Any = eqx.field(static=True, default=None)  # a rule of its own (elbo_settled), else tol's
    compile_options: tuple = eqx.field(static=True, default=())  # XLA options for its loop, as (name, value)

    @property
    def keyed(self) -> bool:
        """Whether a step draws anything: a minibatch or a Monte-Carlo estimate."""
        return bool(self.batched) or self.model.stochastic or getattr(self.direction, "stochastic", False)

    def tangent(self, u: dict, grads: dict, data: dict) -> dict:
        """A projected parameter's gradient as its gradient mapping (``ConstraintEval.tangent``)."""
        plan = self.model.program.constrained
        if plan is None or not plan.projections:
            return grads
        from ..constraints import ConstraintEval

        return ConstraintEval(self.model, data).tangent(u, grads)

    def after(self, u: dict, data: dict) -> dict:
        """The after-update: each projected parameter put back onto its set (constraints_to_method)."""
        plan = self.model.program.constrained
        if plan is None or not plan.projections:
            return u
        from ..constraints import ConstraintEval

        return ConstraintEval(self.model, data).project(u)

    @property
    def flat(self) -> bool:
        """Whether the optimizer runs on the parameters raveled into one vector (its state too):
        a direction that is a flat vector says so (``JacobianDirection.flat``)."""
        return bool(getattr(self.direction, "flat", False))

    @property
    def constrained(self) -> bool:
        return bool(self.model.program.constraints)

    def log_extras(self, state: GradientState, data: dict) -> dict:
        """What the history keeps at log points besides the objectives: the largest violation of
        any constraint (``violation``), and for several objectives the cosine similarities of their
        gradients (``conflict``, m x m): under Jacobian descent (``JacobianDirection.conflicts``)
        those the last step aggregated, on its minibatch and draw; otherwise at the state's
        parameters, on the full data or with ``batch`` on a fixed minibatch (``report_rows``)."""
        out = {}
        if self.constrained:
            from .constrained import largest

            out["violation"] = largest(self.model, self.params(state), data)
        if len(self.model.program.objectives) > 1:
            from .conflict import cosines, cosines_of
            from .jacobian import GRAMIAN

            if self.model.program.lowers:  # the objectives' hypergradients, through the lower solution
                from .hypergradient import cosines

            if GRAMIAN in state.est:  # the Gramian of the gradients the last step aggregated
                out["conflict"] = cosines_of(state.est[GRAMIAN])
            else:
                out["conflict"] = cosines(self.model, self.params(state), self.report_rows(data))
        return out

    def report_rows(self, data: dict) -> dict:
        """The data the history's conflict matrix is computed on: with ``batch``, ``CONFLICT_SEED``'s
        ``batch`` rows, the same at every log point (the full data, at every log point, cost a
        minibatched fit more than its steps: mean, 2 objectives, N = 2e5, batch 256, 2000 steps:
        0.21 s, against 0.13 s on the fixed rows)."""
        if not self.batched:
            return data
        rows = conflict_rows(self.n_rows, self.batch)
        return {n: (a[rows] if n in self.batched else a) for n, a in data.items()}

    def constraint_report(self, state: GradientState, data: dict) -> dict:
        """Per constraint: its largest violation and, for a multiplier method, its multiplier."""
        from .constrained import report

        return report(self.model, self.params(state), data, state.est)

    def init(self, u: dict, data: dict, key=None) -> GradientState:
        u = self.after(u, data)  # a projected parameter starts on its set
        est = self.model.initial_state(u, data)
        if hasattr(self.direction, "init"):
            est = self.direction.init(u, data, est)
        if hasattr(self.direction, "start"):  # a direction that picks its own start (laplace_start)
            u, est = self.direction.start(u, data, est)
        # host-made constants (jnp.zeros and jnp.asarray are a compile each in a fresh process)
        recent = self.stop.init() if self.stop is not None else \
            jax.device_put(np.zeros((WINDOW if self.tol is not None else 0,), np.float32))
        return GradientState(u, self.update.init(ravel_pytree(u)[0] if self.flat else u), est, recent,
                             jax.device_put(np.asarray(False)))

    def _draw(self, data: dict, key):
        """This step's data (a minibatch when ``batch`` is set) and Monte-Carlo key, both from the
        step's key: the minibatch from the first half of a split when both are needed."""
        if key is None:
            return data, None
        stochastic = self.model.stochastic or getattr(self.direction, "stochastic", False)
        keys = jax.random.split(key) if self.batched and stochastic else key[None]
        sub, draw = keys[0], keys[-1] if stochastic else None
        if self.batched:
            idx = jax.random.randint(sub, (self.batch,), 0, self.n_rows)
            data = {n: (a[idx] if n in self.batched else a) for n, a in data.items()}
        return data, draw

    def step(self, state: GradientState, data: dict, t, key=None):
        d, draw = self._draw(data, key)
        loss, values, grads, est = self.direction(state.u, d, draw, state.est)
        if self.flat:  # an elementwise optimizer on the raveled parameters (JacobianDirection.flat)
            x, unravel = ravel_pytree(state.u)
            g, value_fn = ravel_pytree(grads)[0], self.direction.value_fn(d, draw, state.est)
            updates, opt_state = self.update.update(g, state.opt_state, x, value=loss, grad=g,
                                                    value_fn=lambda x: value_fn(unravel(x)))
            u = unravel(optax.apply_updates(x, updates))
        else:
            grads = self.tangent(state.u, grads, d)
            updates, opt_state = self.update.update(grads, state.opt_state, state.u, value=loss, grad=grads,
                                                    value_fn=self.direction.value_fn(d, draw, state.est))
            u = self.after(optax.apply_updates(state.u, updates), d)
        recent, converged = self._settled(state, loss, t)
        return GradientState(u, opt_state, est, recent, converged), {"values": values}

    def _settled(self, state: GradientState, loss, t):
        """The ring buffer of recent losses and the tol test at step ``t`` (see the module doc)."""
        if self.stop is not None:  # the rule keeps its own carry in ``recent``
            recent, settled = self.stop.update(state.recent, loss, t)
            return recent, state.converged | settled
        if self.tol is None:
            return state.recent, state.converged
        slot = t % WINDOW
        before = state.recent[slot]  # the loss WINDOW steps ago
        scale = jnp.maximum(jnp.maximum(jnp.abs(loss), jnp.abs(before)), 1.0)
        settled = (t >= WINDOW) & (jnp.abs(loss - before) <= self.tol * scale)
        return state.recent.at[slot].set(loss.astype(jnp.float32)), state.converged | settled

    def objective(self, stats: dict):
        """The aggregate of the objectives as written, from a step's stats (at log points only:
        computed in every step it would cost a cheap step several percent)."""
        return as_written(self.model, stats["values"])

    @property
    def may_terminate(self) -> bool:
        """Whether ``terminate`` can ever hold (only with ``tol``): the runtime then skips the
        steps after it (a ``lax.cond`` a step); otherwise the loop body is the bare step."""
        return self.tol is not None or self.stop is not None

    def terminate(self, state: GradientState):
        # without tol a constant, which XLA folds out of the loop's condition
        return state.converged if self.may_terminate else jnp.asarray(False)

    def finish(self, state: GradientState) -> None:
        """The host's look at the run's final, concrete state: a direction's warnings (a lower
        level's singular Hessian, a degenerate lower constraint), which ``params`` traced inside
        the loop's chunk cannot show."""
        if hasattr(self.direction, "check_state"):
            self.direction.check_state(state.est)

    def iterate(self, state: GradientState) -> dict:
        """The variables the steps move (the runtime's finiteness check reads them): ``params``
        computes from them (an iterate average, a Laplace frame's map to the guide's parameters,
        a lower level's solution), all finite when they are, and costs the loop's compile more
        (0.075 s of a VI fit's under the defaults)."""
        return state.u

    def params(self, state: GradientState) -> dict:
        # the schedule-free evaluation point, lookahead's slow weights, else the iterate itself
        u = final_params(state.opt_state, state.u)
        if hasattr(self.direction, "to_params"):  # a direction fitting in its own coordinates (laplace_start)
            u = self.direction.to_params(u, state.est)
        if hasattr(self.direction, "reported"):  # what the direction solves for itself: lower levels
            u = {**u, **self.direction.reported(state.est)}
        return u


def as_written(model: Model, values):
    """The objectives' aggregate as the user wrote them (maximised ones not negated)."""
    if values.shape[-1] == 1:
        return values[..., 0]
    return model.aggregate(values)  # the model owns the aggregation


@SOLVERS.register("gradient", cite="Optax (DeepMind, 2020); loop structure after Optimistix (Rader et al., 2024)")
def gradient(model: Model, opt, batch: int | None = None, tol: float | None = None) -> GradientSolver:
    """First-order descent: the gradient of the (aggregated, sign-corrected) loss, then an Optax update."""
    _, batched, n_rows = batch_axis(model.program, model.dims, batch)
    solver = GradientSolver(model, direction_of(model, opt), opt, tuple(batched), n_rows, batch, tol)
    if model.program.vi_defaults is not None:  # the settings chosen for a VI fit (choose_vi_defaults)
        from .vi_defaults import compose

        solver = compose(solver, model.program.vi_defaults)
    return solver


def direction_of(model: Model, opt=None):
    """The plan's direction: the gradient of the loss, or, for a vector objective whose aggregator
    is not linear (mean and sum are), the Jacobian-descent direction; with constraints left to a
    multiplier method, that direction plus the gradient of the method's term."""
    plan = model.program.aggregate
    if model.program.lowers:  # a bilevel program: the hypergradient of its lower blocks' method
        from .hypergradient import HypergradientDirection

        return HypergradientDirection.of(model)
    from .constrained import ConstrainedDirection, method_of

    method = method_of(model)
    if plan is None or plan.aggregator.value in LINEAR:
        direction = Gradient(model)
    else:
        from ...passes.objectives_to_aggregate import build_aggregator
        from .constrained import TangentRows
        from .jacobian import JacobianDirection

        rows = TangentRows.of(model)
        # the step's Gramian serves the conflict report where the rows are the objectives' own
        # gradients and nothing wraps the direction (a multiplier method's term, constrained rows)
        conflicts = rows is None and method is None and not model.each
        direction = JacobianDirection(model, build_aggregator(plan.aggregator), rows, conflicts)
    return direction if method is None else ConstrainedDirection.of(direction, model, method, opt)
