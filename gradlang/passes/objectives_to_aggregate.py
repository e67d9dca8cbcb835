"""Several objectives become one vector objective with its aggregator.

``minimize { a: ..., b: ... }`` is the vector (a, b); each entry's loss is its value, negated for a
maximised one.  The aggregator (``solve { aggregator = ... }``, a registry entry of
``gradlang list aggregators`` with its arguments) turns the vector's Jacobian J (m x n) into the
step direction: Jacobian descent (Quinton & Rey, Jacobian Descent for Multi-Objective
Optimization, 2024).  ``mean`` and ``sum`` weigh the entries 1/m and 1, which is the gradient of
their mean or sum, so those programs take the plain gradient of one scalar; any other aggregator
makes the solver form J.  The default is ``upgrad``.  One objective needs no aggregator.

``minimize each(v)`` makes every entry of the vector v its own objective (with ``batch``, one per
row of the minibatch): instance-wise risk minimisation (Quinton & Rey 2024, Section 5), the
vector objective's entries those of v, all with the statement's sign.

    vector objective [+task1, +task2, +small] aggregator upgrad
    vector objective [+each(objective)] aggregator upgrad
"""

from __future__ import annotations

from ..errors import TypeError_
from ..ir import nodes as ir
from ..ir.plan import Aggregate

DEFAULT = "upgrad"
LINEAR = ("mean", "sum")  # the gradient of the weighted sum: no Jacobian needed


def build_aggregator(cfg: ir.ConfigValue):
    """The registry's aggregator that ``cfg`` names, built with its arguments (a located error if
    the name or the arguments are wrong)."""
    from ..lib.aggregators import AGGREGATORS

    return AGGREGATORS.build(cfg)


def objectives_to_aggregate(program: ir.Program) -> ir.Program:
    objectives = program.objectives
    each = any(o.each for o in objectives)
    if len(objectives) < 2 and not each:
        return program
    if each:
        _each_fits(program, objectives[0])
    written = getattr(program.solve, "aggregator_config", None)
    cfg = written or ir.ConfigValue("word", DEFAULT, span=objectives[0].span)
    agg = build_aggregator(cfg)  # checked here, so `gradlang check` reports a wrong name or argument
    if each and getattr(program.solve, "batch", None) and agg.init(2, 1) != ():
        raise TypeError_(f"aggregator {agg.name} keeps a state per objective, but with each(...) and batch "
                         "the objectives are other rows at every step", cfg.span,
                         "choose a stateless aggregator (upgrad, mgda, dualproj, ...), or leave batch out")
    aggregate = Aggregate(tuple(f"each({o.name})" if o.each else o.name for o in objectives),
                          tuple(1.0 if o.sense == "minimize" else -1.0 for o in objectives),
                          cfg, span=objectives[0].span)
    return program.replace(aggregate=aggregate)


def _each_fits(program: ir.Program, objective: ir.ObjectiveIR) -> None:
    """``each(v)`` is stepped by the gradient method, without lower blocks (a located error)."""
    method = getattr(program.solve, "method", "gradient")
    if method != "gradient":
        raise TypeError_(f"minimize each(...) is a vector objective, which method = {method} does not take",
                         program.solve.spans.get("method", objective.span),
                         "leave method out (gradient, with the aggregator's direction)")
    if program.lowers:
        raise TypeError_("minimize each(...) with lower blocks is not supported", objective.span,
                         "write one upper objective, e.g. minimize mean(...)")
