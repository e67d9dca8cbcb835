"""Each constraint of ``subject to`` becomes a projection, a penalty or a multiplier.

``solve { constraints = ... }`` decides (``gradlang list constraints``):

- ``auto`` (the default): the constraints on one parameter whose feasible set is simple are met by
  projecting the parameter onto it after every update (projected gradient; Bertsekas, Nonlinear
  Programming, 3rd ed., sec. 2.3); the rest by the augmented Lagrangian;
- ``projection``: every constraint by projection (an error names one whose set is not simple);
- ``penalty(rho)``, ``augmented_lagrangian(rho, ...)``, ``lagrangian(dual_lr, ...)``: every
  constraint by that method, with its multipliers in the solver state.

Simple sets, recognised per parameter ``p`` (bounds and right sides known before the run):
``p >= a`` (non-negative orthant or a box), ``p >= a`` with ``p <= b`` (a box), ``sum(p) == s``
with ``p >= 0`` (the simplex), ``norm2(p) <= r`` / ``sumsq(p) <= r`` / ``norm1(p) <= r`` /
``max(abs(p)) <= r`` (balls), ``A @ p == b`` (an affine set, A a matrix), ``dot(a, p) == b`` /
``<= b`` (a hyperplane, a halfspace).

    constraints: project p onto simplex(1)   [sum(p) == 1, p >= 0]
                 augmented_lagrangian(rho=10): spread
"""

from __future__ import annotations

from ..errors import ConfigError, TypeError_
from ..ir import nodes as ir
from ..ir.plan import ConstraintIR, ConstraintsPlan, Projection
from ..ir.visit import refs

MULTIPLIER_METHODS = ("penalty", "augmented_lagrangian", "lagrangian")
PROX_METHODS = ("proximal", "fista")  # their prox step composes with projections on other parameters


def _known(e: ir.Expr) -> bool:
    """Known before the run: numbers, consts, dims and data (no parameter, let or draw)."""
    return all(r.kind in ("const", "dim", "data") for r in refs(e))


def _param(e: ir.Expr) -> str | None:
    return e.name if isinstance(e, ir.Ref) and e.kind == "param" else None


def _piece(c: ConstraintIR) -> tuple | None:
    """What a constraint says of one parameter, if it is one of the simple forms:
    (param, form, args) with form lower | upper | sum | l2 | l2sq | l1 | linf | affine | dot."""
    w = c.written
    op, (lhs, rhs) = w.op, w.args
    if op in ("greater_equal", "greater"):
        op, lhs, rhs = "less_equal", rhs, lhs  # a >= b  ->  b <= a
    if op in ("less_equal", "less"):
        if _param(lhs) and _known(rhs):
            return _param(lhs), "upper", (rhs,)
        if _param(rhs) and _known(lhs):
            return _param(rhs), "lower", (lhs,)
        if isinstance(lhs, ir.Prim) and lhs.args and _param(lhs.args[0]) and _known(rhs):
            form = {"norm2": "l2", "sumsq": "l2sq", "norm1": "l1"}.get(lhs.op)
            if form and len(lhs.args) == 1:
                return _param(lhs.args[0]), form, (rhs,)
        if isinstance(lhs, ir.Prim) and lhs.op == "max" and len(lhs.args) == 1:
            inner = lhs.args[0]
            if isinstance(inner, ir.Prim) and inner.op == "abs" and _param(inner.args[0]) and _known(rhs):
                return _param(inner.args[0]), "linf", (rhs,)
    dot = _dot(lhs)
    if dot is not None and _known(rhs):
        a, p = dot
        return p, ("dot_eq" if op == "equal" else "dot_le"), (a, rhs)
    if op == "equal":
        if isinstance(lhs, ir.Prim) and lhs.op == "sum" and len(lhs.args) == 1 and _param(lhs.args[0]) \
                and _known(rhs) and not lhs.kwargs:
            return _param(lhs.args[0]), "sum", (rhs, lhs.args[0])
        if isinstance(lhs, ir.Prim) and lhs.op == "matmul" and _param(lhs.args[1]) and _known(lhs.args[0]) \
                and _known(rhs):
            return _param(lhs.args[1]), "affine", (lhs.args[0], rhs)
    return None


def _dot(e: ir.Expr):
    """``dot(a, p)`` or ``sum(a * p)``: (a, p) with a known, else None (a matrix a @ p is affine)."""
    if isinstance(e, ir.Prim) and e.op in ("dot", "vdot") and len(e.args) == 2:
        a, p = e.args
        if _param(p) and _known(a):
            return a, _param(p)
        if _param(a) and _known(p):
            return p, _param(a)
    return None


def _simple_set(pieces: list[tuple]) -> tuple[str, tuple] | None:
    """The simple set the pieces on one parameter describe together, or None."""
    forms = sorted(f for f, _ in pieces)
    args = {f: a for f, a in pieces}
    zero = ir.Lit(0.0)  # equal to Lit(0) too (0 == 0.0)
    if forms == ["lower"] and args["lower"][0] == zero:
        return "nonneg", ()
    if forms == ["lower"]:
        return "box", (args["lower"][0], ir.Lit(float("inf")))
    if forms == ["upper"]:
        return "box", (ir.Lit(float("-inf")), args["upper"][0])
    if forms == ["lower", "upper"]:
        return "box", (args["lower"][0], args["upper"][0])
    if forms == ["lower", "sum"] and args["lower"][0] == zero:
        return "simplex", args["sum"][:1]
    if forms == ["sum"]:  # sum(p) == s: the hyperplane <1, p> = s
        p = args["sum"][1]
        return "hyperplane", (ir.Prim("ones_like", (p,)), args["sum"][0])
    if len(forms) == 1:
        form = forms[0]
        if form == "l2":
            return "l2_ball", args[form]
        if form == "l2sq":
            return "l2_ball", (ir.Prim("sqrt", args[form]),)
        if form == "l1":
            return "l1_ball", args[form]
        if form == "linf":
            return "linf_ball", args[form]
        if form == "affine":
            return "affine", args[form]
        if form == "dot_eq":
            return "hyperplane", args[form]
        if form == "dot_le":
            return "halfspace", args[form]
    return None


def _largest_simple(items: list) -> tuple[list, tuple | None]:
    """The largest subset of one parameter's constraints whose set is simple, and that set (the
    others go to the multiplier method): ``sum(p) == 1, p >= 0, sumsq(p) <= 0.5`` projects onto the
    simplex and leaves the ball constraint to the augmented Lagrangian."""
    from itertools import combinations

    for size in range(len(items), 0, -1):
        for subset in combinations(items, size):
            found = _simple_set([(form, args) for _, (_, form, args) in subset])
            if found is not None:
                return list(subset), found
    return [], None


def _method(program: ir.Program) -> ir.ConfigValue:
    cfg = getattr(program.solve, "constraints", None)
    return cfg if cfg is not None else ir.ConfigValue("word", "auto")


def _check_with_prox(program: ir.Program, solver: str, cfg: ir.ConfigValue, projections: list, rest: list):
    """Under a proximal method a constraint is met by projection, composed with the prox step: the
    prox of h(z) + indicator_C(x) for the terms h on other parameters is (prox_h(z), P_C(x)),
    exactly, since the two act on different parameters.  A multiplier method has no place in the
    prox-gradient step (its dual update and changing loss break the line search's model), nor does
    a projection on a parameter that has prox terms of its own (the composition is not the prox)."""
    if cfg.value not in ("auto", "projection"):
        raise ConfigError(f"constraints = {cfg.value} under method = {solver}", cfg.span,
                          f"a multiplier method runs under method = gradient; under method = {solver} constraints "
                          "on parameters without prox terms are met by projection (constraints = auto)")
    if rest:
        c = rest[0]
        raise ConfigError(f"constraint '{c.label}' is not a simple set, and method = {solver} meets constraints "
                          "only by projection", c.span,
                          "use method = gradient (constraints = auto gives it to the augmented Lagrangian)")
    proxed = {t.param for t in (program.split.terms if program.split is not None else ())}
    for p in projections:
        if p.param in proxed:
            raise ConfigError(f"{p.param} has prox terms and a constraint under method = {solver}", p.span,
                              f"write the set as a prox term of the objective (e.g. + nonneg({p.param})), "
                              "or use method = gradient")


def constraints_to_method(program: ir.Program) -> ir.Program:
    if not program.constraints:
        return program
    cfg = _method(program)
    name = cfg.value
    from ..lib.constraints import CONSTRAINT_METHODS

    if name not in ("auto", "projection"):
        CONSTRAINT_METHODS.get(name, cfg.span)  # an unknown method: located, with the known ones
    solver = getattr(program.solve, "method", "gradient")
    if solver not in ("gradient",) + PROX_METHODS:
        raise TypeError_(f"constraints under method = {solver}", program.constraints[0].span,
                         "constrained programs run with method = gradient (any constraint) or proximal / fista "
                         "(simple sets, by projection); a simple set can also be a prox term (e.g. + nonneg(x))")
    projections, rest = [], []
    if name in ("auto", "projection"):
        by_param: dict[str, list] = {}
        for c in program.constraints:
            piece = _piece(c)
            if piece is None:
                rest.append(c)
            else:
                by_param.setdefault(piece[0], []).append((c, piece))
        for param, items in by_param.items():
            kept, found = _largest_simple(items)
            rest += [c for c, _ in items if all(c is not k for k, _ in kept)]
            if found is None:
                continue
            items = kept
            decl = program.params[param]
            if decl.domain.name != "real":
                raise TypeError_(f"constraint on {param}, whose domain is {decl.domain}: a projection moves the "
                                 "parameter itself", items[0][0].span, f"declare param {param}: real[...]")
            projections.append(Projection(param, found[0], found[1], tuple(c.label for c, _ in items),
                                          span=items[0][0].span))
        if name == "projection" and rest:
            raise ConfigError(f"constraint '{rest[0].label}' does not describe a simple set, so it cannot be met "
                              "by projection", rest[0].span,
                              "use constraints = auto (projection where simple, augmented Lagrangian else), "
                              "or penalty / augmented_lagrangian / lagrangian")
        method = ir.ConfigValue("word", "augmented_lagrangian", span=cfg.span) if rest else None
    else:
        rest = list(program.constraints)
        method = cfg
    if method is not None:  # checked here, so `gradlang check` reports a wrong argument
        CONSTRAINT_METHODS.build(method, "constraint method", "constraints")
    if solver in PROX_METHODS:
        _check_with_prox(program, solver, cfg, projections, rest)
    plan = ConstraintsPlan(tuple(projections), tuple(rest), method, span=program.constraints[0].span)
    return program.replace(constrained=plan)
