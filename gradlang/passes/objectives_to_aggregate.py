"""Several objectives become one vector objective with its aggregator.

``minimize { a: ..., b: ... }`` is the vector (a, b); each entry's loss is its value, negated for a
maximised one.  The aggregator (``solve { aggregator = ... }``, a registry entry of
``gradlang list aggregators`` with its arguments) turns the vector's Jacobian J (m x n) into the
step direction: Jacobian descent (Quinton & Rey, Jacobian Descent for Multi-Objective
Optimization, 2024).  ``mean`` and ``sum`` weigh the entries 1/m and 1, which is the gradient of
their mean or sum, so those programs take the plain gradient of one scalar; any other aggregator
makes the solver form J.  The default is ``upgrad``.  One objective needs no aggregator.

    vector objective [+task1, +task2, +small] aggregator upgrad
"""

from __future__ import annotations

from ..ir import nodes as ir

DEFAULT = "upgrad"
LINEAR = ("mean", "sum")  # the gradient of the weighted sum: no Jacobian needed


def build_aggregator(cfg: ir.ConfigValue):
    """The registry's aggregator that ``cfg`` names, built with its arguments (a located error if
    the name or the arguments are wrong)."""
    from ..lib.aggregators import AGGREGATORS

    return AGGREGATORS.build(cfg)


def objectives_to_aggregate(program: ir.Program) -> ir.Program:
    objectives = program.objectives
    if len(objectives) < 2:
        return program
    written = getattr(program.solve, "aggregator_config", None)
    cfg = written or ir.ConfigValue("word", DEFAULT, span=objectives[0].span)
    build_aggregator(cfg)  # checked here, so `gradlang check` reports a wrong name or argument
    aggregate = ir.Aggregate(tuple(o.name for o in objectives),
                             tuple(1.0 if o.sense == "minimize" else -1.0 for o in objectives),
                             cfg, span=objectives[0].span)
    return program.replace(aggregate=aggregate)
