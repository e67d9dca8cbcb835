"""The pass pipeline: each pass a pure function ``ir.Program -> ir.Program``, in order.  The
clean-ups tidy what the user wrote; each later pass makes one kind of choice and writes it into the
IR, so that after the last the IR is a plan the backend composes without deciding anything.

``gradlang compile F --emit ir:PASS`` prints the IR after the named pass.
"""

from __future__ import annotations

from ..ir import nodes as ir
from .bilevel_to_hypergrad import bilevel_to_hypergrad
from .choose_estimators import choose_estimators
from .choose_optimizer import choose_optimizer
from .choose_vi_defaults import choose_vi_defaults
from .constraints_to_method import constraints_to_method
from .fold_constants import fold_constants
from .inline_functions import inline_functions
from .lower_vi_objectives import lower_vi_objectives
from .objectives_to_aggregate import objectives_to_aggregate
from .prune_unused import prune_unused
from .split_prox import split_prox

PIPELINE = [
    inline_functions, fold_constants, prune_unused,  # clean-ups
    lower_vi_objectives,      # elbo / iwae / renyi -> expect over the guide
    choose_estimators,        # every sample site gets its estimator, defaults written in
    split_prox,               # objective -> smooth part + prox terms c * f(p), for prox methods
    constraints_to_method,    # each constraint -> a projection, a penalty, or a multiplier
    objectives_to_aggregate,  # several objectives -> one vector objective and its aggregator
    bilevel_to_hypergrad,     # each lower block -> an inner solve and its hypergradient method
    choose_vi_defaults,       # a VI fit that wrote no optimizer, steps or tol -> settings that converge
    choose_optimizer,         # the optimizer expression -> a checked spec, schedules bound
]


def pass_names() -> list[str]:
    return [p.__name__ for p in PIPELINE]


def run_passes(program: ir.Program, until: str | None = None) -> ir.Program:
    """Run the pipeline (or its prefix up to and including the pass ``until``)."""
    for p in PIPELINE:
        program = p(program)
        if p.__name__ == until:
            break
    return program
