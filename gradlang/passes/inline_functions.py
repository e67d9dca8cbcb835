"""Inline user functions: ``f(a, b)`` becomes ``{ let f.x = a; let f.y = b; body }``.

Parameters are renamed to ``f.x#k`` (a name no program can write), so arguments never capture a
caller's local of the same name; a ``let`` in the body that shadows a parameter is respected.
After this pass no ``CallFn`` remains and ``fns`` is empty.
"""

from __future__ import annotations

import itertools

from ..ir import nodes as ir
from ..ir.visit import map_children
from ._program import map_expressions


def _rename(e, names: dict[str, str]):
    if isinstance(e, ir.Ref) and e.kind == "local" and e.name in names:
        return ir.Ref("local", names[e.name], span=e.span)
    if isinstance(e, ir.Block):
        bindings, scope = [], dict(names)
        for name, value in e.bindings:
            bindings.append((name, _rename(value, scope)))
            scope.pop(name, None)  # shadowed from here on
        return ir.Block(tuple(bindings), _rename(e.value, scope), e.origin, span=e.span)
    return map_children(e, lambda c: _rename(c, names))


def inline_functions(program: ir.Program) -> ir.Program:
    counter = itertools.count()

    def inline(e):
        if isinstance(e, ir.CallFn):
            fn = program.fns[e.name]
            k = next(counter)
            fresh = {p: f"{fn.name}.{p}#{k}" for p in fn.params}
            body = inline(_rename(fn.body, fresh))
            args = tuple(inline(a) for a in e.args)
            return ir.Block(tuple(zip(fresh.values(), args)), body, origin=fn.name, span=e.span)
        return map_children(e, inline)

    out = map_expressions(program, inline)
    return out.replace(fns={})
