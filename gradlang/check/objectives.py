"""The objective statement: one per program, ``minimize e`` / ``maximize e`` or several named ones
(``minimize { a: ..., b: ... }``), over at least one parameter or a guide."""

from __future__ import annotations

from ..errors import NameError_, TypeError_
from ..ir import nodes as ir
from ..syntax import ast
from .names import keyword_span


def check_objectives(checker, stmts) -> None:
    found = [s for s in stmts if isinstance(s, (ast.Objective, ast.ObjectiveSet, ast.Saddle))]
    if not found:
        checker.errors.append(TypeError_("the program has no objective", None,
                                      "add `minimize <expression>` or `maximize <expression>`",
                                      file=checker.source.name))
        return
    if len(found) > 1:
        checker.errors.append(TypeError_("a program has one objective statement", keyword_span(
            found[1].span, found[1].sense if hasattr(found[1], "sense") else "minimize"),
            f"the first is at {found[0].span}; name several in one: minimize {{ a: ..., b: ... }}"))
        return
    s = found[0]
    if not checker.out.params and not isinstance(s, ast.Saddle) and not checker.scope.has_guide:
        checker.errors.append(TypeError_("the program has no parameters to optimise",
                                      keyword_span(s.span, s.sense), "declare one: param w: real[D] = 0"))
        return
    if isinstance(s, ast.Objective):
        checker.out.objectives.append(ir.ObjectiveIR("objective", s.sense, checker.resolve.expr(s.value),
                                                  each=s.each, span=s.value.span))
    elif isinstance(s, ast.ObjectiveSet):
        seen = set()
        for item in s.items:
            if item.name in seen:
                checker.errors.append(NameError_(f"objective '{item.name}' is named twice", item.span, None))
            seen.add(item.name)
            checker.out.objectives.append(ir.ObjectiveIR(item.name, s.sense, checker.resolve.expr(item.value),
                                                      span=item.value.span))
