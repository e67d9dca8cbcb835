"""The plan choose_vi_defaults wrote, composed into a gradient solver: the Laplace start and frame
(a direction wrapper, ``laplace_start``), the iterate average (an Optax wrapper, ``_averaged``),
and the stopping rule (``elbo_settled``, the solver's ``terminate``)."""

from __future__ import annotations

from dataclasses import replace

from ...ir import nodes as ir
from ...lib.optimizers._averaged import averaged
from .elbo_settled import ElboSettled
from .laplace_start import LaplaceFrame


def compose(solver, plan: ir.VIDefaults):
    direction = solver.direction
    if plan.start == "laplace":
        direction = LaplaceFrame.of(direction, solver.model, solver.model.program.guide.family.value)
    return replace(solver, direction=direction, update=averaged(solver.update, plan.average),
                   stop=ElboSettled(plan.every, plan.z))
