"""Drop lets that no objective, report, init or other used let refers to (they cost nothing
under jit, but the IR printed for a reader should show only what the program computes)."""

from __future__ import annotations

from ..ir import nodes as ir
from ..ir.visit import refs


def prune_unused(program: ir.Program) -> ir.Program:
    roots = [o.value for o in program.objectives] + list(program.reports.values())
    roots += [p.init for p in program.params.values() if p.init is not None]
    roots += [c.g for c in program.constraints]
    roots += [low.objective.value for low in program.lowers.values()]
    roots += [c.g for low in program.lowers.values() for c in low.constraints]
    for block in (program.model, program.guide):
        roots += list(block.stmts) if block is not None else []
    used: set[str] = set()
    stack = [r.name for root in roots for r in refs(root, "let")]
    while stack:
        name = stack.pop()
        if name not in used:
            used.add(name)
            stack += [r.name for r in refs(program.lets[name], "let")]
    return program.replace(lets={n: e for n, e in program.lets.items() if n in used})
