"""The plan choose_vi_defaults wrote, composed into a gradient solver: the Laplace start and frame
(a direction wrapper, ``laplace_start``), the iterate average (an Optax wrapper, ``_averaged``),
the stopping rule (``elbo_settled``, the solver's ``terminate``) and, with ``reject_nonfinite``, the
count of rejected Monte-Carlo draws in the estimator state (``VI._over_accepted`` counts,
``finite_particles`` rejects) and updates skipped where a step accepted no draw
(``optax.apply_if_finite``: its gradient is NaN); with ``loop_compile = "fast"``, the XLA options
of ``compile_options.loop_options`` for the loop."""

from __future__ import annotations

from dataclasses import fields, replace

import jax
import jax.numpy as jnp
import optax

from ...ir.plan import VIDefaults
from ...lib.optimizers._averaged import averaged
from ..compile_options import loop_options
from ..vi import DRAWS, REJECTED
from .elbo_settled import ElboSettled
from .gradient import GradientSolver
from .laplace_start import FRAME, LaplaceFrame

# a step whose every draw was rejected is skipped however many follow (optax's cap, then NaN updates)
NEVER_GIVE_UP = 2**30


class CountingSolver(GradientSolver):
    """The gradient solver, its estimator state carrying the count of draws and of rejected draws
    (and each Monte-Carlo block's last estimate), reported in the history at log points."""

    def init(self, u: dict, data: dict, key=None):
        state = super().init(u, data, key)
        est = {**state.est, REJECTED: jnp.int32(0), DRAWS: jnp.int32(0)}
        inner = {k: v for k, v in est.items() if k != FRAME}
        # the blocks' last-estimate slots, by tracing the objective once with the counters in
        _, (_, out) = jax.eval_shape(lambda u: self.model.loss_and_values(u, data, jax.random.PRNGKey(0), inner), u)
        est |= {k: jnp.zeros(s.shape, s.dtype) for k, s in out.items() if k not in est}
        return state._replace(est=est)

    def log_extras(self, state, data: dict) -> dict:
        return {**super().log_extras(state, data), REJECTED: state.est[REJECTED], DRAWS: state.est[DRAWS]}


def compose(solver, plan: VIDefaults):
    direction = solver.direction
    if plan.start == "laplace":
        direction = LaplaceFrame.of(direction, solver.model, solver.model.program.guide.family.value)
    update = averaged(solver.update, plan.average)
    if getattr(plan, "reject_nonfinite", False):
        update = optax.apply_if_finite(update, NEVER_GIVE_UP)
        solver = CountingSolver(**{f.name: getattr(solver, f.name) for f in fields(solver)})
    options = tuple(loop_options(getattr(plan, "loop_compile", None)).items())
    return replace(solver, direction=direction, update=update, stop=ElboSettled(plan.every, plan.z),
                   compile_options=options)
