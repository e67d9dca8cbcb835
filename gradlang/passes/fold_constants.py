"""Fold constants: scalar consts and dims become literals, and an operation whose operands are all
scalar literals becomes its value (``2 * pi * 0.5`` -> ``3.14159...``).  Array consts stay
references, so the compiled program holds one copy of each."""

from __future__ import annotations

import jax
import numpy as np

from ..ir import nodes as ir
from ..ir.visit import rewrite
from ..lib.builtins import FUNCTIONS
from ._program import map_expressions

_FOLDABLE = {"add", "subtract", "multiply", "divide", "power", "negative", "exp", "log", "sqrt",
             "log1p", "expm1", "abs", "tanh", "sin", "cos", "equal", "not_equal", "less",
             "less_equal", "greater", "greater_equal", "logical_and", "logical_or", "logical_not"}


def _scalar(v) -> bool:
    return isinstance(v, (int, float, bool)) and not isinstance(v, np.ndarray)


def fold_constants(program: ir.Program) -> ir.Program:
    def ref(e: ir.Ref):
        if e.kind == "dim" and e.name in program.dims:
            return ir.Lit(program.dims[e.name], span=e.span)
        if e.kind == "const" and _scalar(program.consts.get(e.name)):
            return ir.Lit(program.consts[e.name], span=e.span)
        return e

    def prim(e: ir.Prim):
        if e.op in _FOLDABLE and not e.kwargs and all(isinstance(a, ir.Lit) and _scalar(a.value) for a in e.args):
            with jax.ensure_compile_time_eval():
                value = np.asarray(FUNCTIONS[e.op](*[a.value for a in e.args])).item()
            if isinstance(value, float) and all(isinstance(a.value, int) for a in e.args) and e.op != "divide":
                return e  # keep integer arithmetic exact and weakly typed
            return ir.Lit(value, span=e.span)
        return e

    return map_expressions(program, lambda e: rewrite(e, {ir.Ref: ref, ir.Prim: prim}))
