"""Split the objective into a smooth part and prox terms ``c * f(p)``, for a proximal method.

Under ``method = proximal | fista``, the objective ``g(p) + c1 * f1(p) + c2 * f2(q) + ...`` is read
as a sum of terms; a term ``c * f(p, ...)`` with ``c`` a positive constant, ``p`` a parameter and
``f`` a function with a proximal operator (a prox entry, ``gradlang list proxes``, or a user's
``prox f(v, t) = ...``) is handled by that operator, and the rest is the smooth part, whose
gradient the method follows (Parikh & Boyd, Proximal Algorithms, 2014, sec. 4.2):

    split: smooth = 0.5 * mean((A @ x - b)^2)
           prox x: 0.05 * berhu(x)  then  0.01 * norm1(x)   [composed: soft_threshold_then]

Several terms on one parameter are composed where the prox of their sum is known exactly (see
``lib/prox/compose.py``); otherwise the error suggests a splitting method.  A prox-able function
left in the smooth part (of a linear map of a parameter, say) is a located error, since a gradient
method would only take its subgradient: it names the method that can take it.
"""

from __future__ import annotations

from ..errors import TypeError_
from ..ir import nodes as ir
from ..ir.visit import refs, walk

METHODS = ("proximal", "fista")
NONSMOOTH = {"abs", "norm1", "norm2", "nuclear", "tv1d", "group_norm", "elastic_net", "linf"}


def _terms(e: ir.Expr, sign: float = 1.0) -> list[tuple[float, ir.Expr]]:
    """``e`` as a signed sum of terms (through +, - and unary minus)."""
    if isinstance(e, ir.Prim) and e.op == "add" and len(e.args) == 2:
        return _terms(e.args[0], sign) + _terms(e.args[1], sign)
    if isinstance(e, ir.Prim) and e.op == "subtract" and len(e.args) == 2:
        return _terms(e.args[0], sign) + _terms(e.args[1], -sign)
    if isinstance(e, ir.Prim) and e.op == "negative" and len(e.args) == 1:
        return _terms(e.args[0], -sign)
    return [(sign, e)]


def _constant(e: ir.Expr, program: ir.Program) -> bool:
    """Known before the run: numbers, consts, dims (lets of those are not, being evaluated later)."""
    return all(r.kind in ("const", "dim") for r in refs(e)) and not any(
        isinstance(n, (ir.Expect, ir.VIObjective)) for n in walk(e))


def _of_data(e: ir.Expr, program: ir.Program) -> bool:
    """A prox term's argument (groups, bounds): known before the steps, from numbers, consts, dims,
    data and lets of those alone (``let groups = tile(arange(10), 3)``)."""
    for r in refs(e):
        if r.kind == "let":
            if not _of_data(program.lets[r.name], program):
                return False
        elif r.kind not in ("const", "dim", "data"):
            return False
    return not any(isinstance(n, (ir.Expect, ir.VIObjective)) for n in walk(e))


def _prox_names() -> set[str]:
    from ..lib.prox import PROXES

    return set(PROXES.names())


def _factor(e: ir.Expr, program: ir.Program) -> tuple[ir.Expr, ir.Expr]:
    """``c * f`` / ``f * c`` / ``f / c`` -> (c, f) with c constant; otherwise (1, e)."""
    if isinstance(e, ir.Prim) and e.op == "multiply" and len(e.args) == 2:
        a, b = e.args
        if _constant(a, program):
            return a, b
        if _constant(b, program):
            return b, a
    if isinstance(e, ir.Prim) and e.op == "divide" and len(e.args) == 2 and _constant(e.args[1], program):
        return ir.Prim("divide", (ir.Lit(1.0), e.args[1]), span=e.span), e.args[0]
    return ir.Lit(1.0, span=e.span), e


def _prox_term(sign: float, e: ir.Expr, program: ir.Program, names: set[str]) -> ir.ProxTerm | None:
    weight, f = _factor(e, program)
    if isinstance(f, ir.Prim) and f.op in names and f.args and isinstance(f.args[0], ir.Ref) \
            and f.args[0].kind == "param" and all(_of_data(a, program) for a in f.args[1:]) and not f.kwargs:
        term = ir.ProxTerm(f.args[0].name, weight, f.op, tuple(f.args[1:]), expr=e, span=e.span)
    elif isinstance(f, ir.Block) and f.origin in program.proxes and len(f.bindings) == 1 \
            and isinstance(f.bindings[0][1], ir.Ref) and f.bindings[0][1].kind == "param":
        term = ir.ProxTerm(f.bindings[0][1].name, weight, f.origin, (), user=True, expr=e, span=e.span)
    else:
        return None
    if sign < 0:
        raise TypeError_(f"-{term.fn}(...) is concave: a proximal method takes convex terms added to the "
                         "objective", e.span, "add it with a positive weight, or use method = gradient")
    return term


def _check_smooth(smooth: ir.Expr, program: ir.Program, method: str) -> None:
    for n in walk(smooth):
        if isinstance(n, ir.Prim) and n.op in NONSMOOTH and any(r.kind == "param" for r in refs(n)):
            on_param = n.args and isinstance(n.args[0], ir.Ref) and n.args[0].kind == "param"
            what = f"{n.op}(...)" + ("" if on_param else " of an expression of the parameters")
            hint = ("write it as a term of the objective, c * " + n.op + "(p), with c a constant"
                    if on_param else "method = admm or pdhg take a term f(K x) with K a linear map; "
                    "method = gradient takes its subgradient")
            raise TypeError_(f"{what} is not smooth, and method = {method} cannot take its prox here", n.span, hint)


def _sum(terms: list[tuple[float, ir.Expr]], span) -> ir.Expr:
    out: ir.Expr | None = None
    for sign, e in terms:
        if out is None:
            out = e if sign > 0 else ir.Prim("negative", (e,), span=e.span)
        else:
            out = ir.Prim("add" if sign > 0 else "subtract", (out, e), span=e.span)
    return out if out is not None else ir.Lit(0.0, span=span)


INDICATORS = {"nonneg", "box", "simplex", "l1_ball", "l2_ball", "linf_ball", "hyperplane", "halfspace", "affine",
              "k_sparse"}


def _no_indicators(program: ir.Program, method: str) -> None:
    """An indicator term (``+ nonneg(x)``) is 0 wherever it is evaluated: only a proximal method
    enforces it, by its projection; elsewhere it would be silently ignored."""
    for o in program.objectives:
        for n in walk(o.value):
            if isinstance(n, ir.Prim) and n.op in INDICATORS:
                raise TypeError_(f"{n.op}(...) is the indicator of a set, which method = {method} cannot "
                                 "enforce", n.span, "write the set as a constraint (subject to { x >= 0 }), "
                                 "or use method = proximal or fista")


def split_prox(program: ir.Program) -> ir.Program:
    method = getattr(program.solve, "method", "gradient")
    if method not in METHODS:
        _no_indicators(program, method)
        return program
    objective = program.objectives[0]
    if len(program.objectives) > 1 or objective.sense != "minimize":
        raise TypeError_(f"method = {method} minimises one objective", objective.span,
                         "write minimize f(p) + c * norm1(p) with one objective")
    if getattr(program.solve, "batch", None):
        raise TypeError_(f"method = {method} takes full steps on the whole data", program.solve.spans.get("batch"),
                         "leave batch out, or use method = gradient for minibatches")
    if any(isinstance(n, (ir.Expect, ir.VIObjective)) for n in walk(objective.value)):
        raise TypeError_(f"method = {method} needs a deterministic objective (its line search compares "
                         "values)", objective.span, "use method = gradient for a Monte-Carlo objective")
    names = _prox_names()
    smooth, terms = [], []
    for sign, e in _terms(objective.value):
        term = _prox_term(sign, e, program, names)
        if term is None:
            smooth.append((sign, e))
        else:
            terms.append(term)
    smooth_expr = _sum(smooth, objective.span)
    _check_smooth(smooth_expr, program, method)
    for t in terms:
        decl = program.params[t.param]
        if decl.domain.name != "real":
            raise TypeError_(f"{t.fn}({t.param}): a proximal method moves {t.param} freely, and its domain is "
                             f"{decl.domain}", t.span,
                             f"declare param {t.param}: real[...] and add its set as a prox term (e.g. nonneg)")
    from .compose_prox import compose_terms

    composed = compose_terms(terms, program)
    return program.replace(split=ir.ProxSplit(smooth_expr, tuple(terms), composed, span=objective.span))
