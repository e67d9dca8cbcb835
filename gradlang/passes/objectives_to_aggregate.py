"""Several objectives become one vector objective with its aggregator.

``minimize { a: ..., b: ... }`` is the vector (a, b); each entry's loss is its value, negated for a
maximised one, and the aggregator turns that vector (or, for Jacobian descent, its Jacobian) into
the step: ``mean`` and ``sum`` weight the entries 1/m and 1.  The aggregator is ``solve {
aggregator = ... }``, by default ``upgrad`` (Quinton & Rey, Jacobian Descent for Multi-Objective
Optimization, 2024), which is not built yet: a located error says so.  One objective needs no
aggregator and is left as it is.
"""

from __future__ import annotations

from ..check.spans import unsupported
from ..ir import nodes as ir

AGGREGATORS = ("mean", "sum")  # built; the Jacobian-descent issue adds the rest here
DEFAULT = "upgrad"


def objectives_to_aggregate(program: ir.Program) -> ir.Program:
    objectives = program.objectives
    if len(objectives) < 2:
        return program
    solve = program.solve
    written = getattr(solve, "aggregator", None)
    name = written or DEFAULT
    span = solve.spans.get("aggregator") if written else objectives[0].span
    if name not in AGGREGATORS:
        default = "" if written else " (the default for several objectives)"
        raise unsupported(f"aggregator '{name}'{default} is", span,
                          "Jacobian-descent aggregators come later; set aggregator = mean or sum")
    aggregator = ir.ConfigValue("word", name, span=span)
    aggregate = ir.Aggregate(tuple(o.name for o in objectives),
                             tuple(1.0 if o.sense == "minimize" else -1.0 for o in objectives),
                             aggregator, span=objectives[0].span)
    return program.replace(aggregate=aggregate)
