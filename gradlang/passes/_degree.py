"""The degree of an expression as a polynomial of the parameters, read off the IR.

``split_prox`` asks it of a smooth part: degree <= 2 is a quadratic, whose Hessian is constant, so
ADMM's x-update is one linear system factored once (``backend/solvers/admm.py``).  The answer is
conservative: an operation not listed (or not read here) gives None, "not a polynomial", which only
chooses the general x-update.
"""

from __future__ import annotations

from ..ir import nodes as ir
from ..ir.visit import refs


def _has_param(e: ir.Expr, program: ir.Program) -> bool:
    for r in refs(e):
        if r.kind == "param" or (r.kind == "let" and _has_param(program.lets[r.name], program)):
            return True
    return False


LINEAR_OPS = {"negative", "sum", "mean", "transpose", "reshape", "ravel", "flatten", "squeeze", "expand_dims",
              "trace", "diag", "diagonal", "cumsum", "concatenate", "stack", "add", "subtract"}
PRODUCT_OPS = {"multiply", "matmul", "dot", "outer", "inner", "kron"}


def polynomial_degree(e: ir.Expr, program: ir.Program) -> int | None:
    """The degree of ``e`` as a polynomial of the parameters (0: constant), or None when it is not one
    (or the IR is not read here: a conservative answer, which only chooses the general x-update)."""
    if not _has_param(e, program):  # a constant (through lets too)
        return 0
    if isinstance(e, ir.Ref):
        if e.kind == "param":
            return 1
        if e.kind == "let":
            return polynomial_degree(program.lets[e.name], program)
        return 0 if e.kind in ("const", "dim", "data") else None
    if isinstance(e, ir.Index):
        inner = [polynomial_degree(i, program) for i in e.items if isinstance(i, ir.Expr)]
        return polynomial_degree(e.value, program) if all(d == 0 for d in inner) else None
    if not isinstance(e, ir.Prim) or any(polynomial_degree(v, program) != 0
                                         for _, v in e.kwargs if isinstance(v, ir.Expr)):
        return None
    ds = [polynomial_degree(a, program) for a in e.args]
    if any(d is None for d in ds):
        return None
    if all(d == 0 for d in ds):
        return 0
    if e.op in LINEAR_OPS:
        return max(ds)
    if e.op in PRODUCT_OPS:
        return sum(ds)
    if e.op == "divide" and ds[1] == 0:
        return ds[0]
    if e.op in ("square", "sumsq") and len(ds) == 1:
        return 2 * ds[0]
    if e.op == "power" and isinstance(e.args[1], ir.Lit) and e.args[1].value in (0, 1, 2):
        return ds[0] * int(e.args[1].value)
    return None
