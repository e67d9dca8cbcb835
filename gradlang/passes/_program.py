"""Apply an expression rewrite to every expression of a program."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..ir import nodes as ir


def map_expressions(program: ir.Program, fn: Callable[[ir.Expr], ir.Expr]) -> ir.Program:
    """``fn`` applied to every expression, model and guide statements included."""
    model, guide = program.model, program.guide
    if model is not None:
        model = replace(model, stmts=tuple(fn(st) for st in model.stmts))
    if guide is not None:
        guide = replace(guide, stmts=tuple(fn(st) for st in guide.stmts))
    return program.replace(
        model=model, guide=guide,
        lets={n: fn(e) for n, e in program.lets.items()},
        objectives=[replace(o, value=fn(o.value)) for o in program.objectives],
        reports={n: fn(e) for n, e in program.reports.items()},
        params={n: replace(p, init=fn(p.init)) if p.init is not None else p for n, p in program.params.items()},
        fns={n: replace(f, body=fn(f.body)) for n, f in program.fns.items()},
        proxes={n: replace(d, body=fn(d.body)) for n, d in program.proxes.items()},
        constraints=[replace(c, g=fn(c.g), written=fn(c.written)) for c in program.constraints],
        lowers={n: replace(low, objective=replace(low.objective, value=fn(low.objective.value)),
                           constraints=tuple(replace(c, g=fn(c.g), written=fn(c.written)) for c in low.constraints))
                for n, low in program.lowers.items()},
    )
