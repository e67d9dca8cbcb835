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
left in the smooth part (of a nonlinear expression of a parameter, say) is a located error, since a
gradient method would only take its subgradient: it names the method that can take it.

Under ``method = admm | pdhg`` (the splitting methods) a term may also be ``c * f(K @ p)`` (or
``c * f(p @ K)``, for a matrix p; either plus or minus an offset b, ``norm1(A @ x - b)``) with ``K``
and ``b`` known before the run (data, consts, lets of those): such a term is split off with a
dual variable of its own (``ProxSplit.dual``), and so is, under admm, every term (ADMM's x-update
handles the smooth part, its z-updates the terms; Boyd et al. 2011, sec. 3), and under pdhg every
term on a parameter whose terms do not compose (the rest are the primal prox of Condat–Vũ's step).
``c * f(K @ p)`` under proximal | fista, or a non-convex term (k_sparse) under admm | pdhg, is a
located error naming the methods that take it.  The decisions of the method go to
``ProxSplit.options``: admm's ``rho`` (``method = admm(rho = 2)``, default 1; its start, then balanced
against the residuals) and its x-update,
``cholesky`` when the smooth part is a quadratic of real parameters (a polynomial of degree <= 2,
read off the IR: its Hessian is constant, so the x-update is one linear system, factored once) and a
term reads a parameter through a map K, ``cg`` for such a quadratic when every term is on a
parameter itself (K = I: the system's matrix H + rho I is well conditioned, conjugate gradients
solve it with no factorisation),
``gradient`` otherwise (inner gradient steps, see ``backend/solvers/admm.py``); and, for every
method with a budget of at most ``FAST_COMPILE_STEPS`` steps, ``compile=fast``: its loop (and its
init) compiled for compile time, ``backend/compile_options.fast_compile``.
"""

from __future__ import annotations

from ..errors import ConfigError, TypeError_
from ..ir import nodes as ir
from ..ir.plan import ProxSplit, ProxTerm
from ..ir.visit import refs, walk
from ._degree import polynomial_degree

METHODS = ("proximal", "fista", "admm", "pdhg")
SPLITTING = ("admm", "pdhg")  # methods that split a term f(K @ p) off with a dual variable
NONCONVEX = {"k_sparse"}      # a prox, but no conjugate to split with (Moreau's decomposition needs convexity)
SMOOTH = {"sumsq"}            # a prox, but smooth: of anything but the parameter itself, left to the gradient
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


def _prox_names():
    """The prox entries, as a container (``op in _prox_names()``): looked up one name at a time,
    importing only the entries a program names (``Registry.by_file``)."""
    from ..lib.prox import PROXES

    return PROXES


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


def _linear_arg(a: ir.Expr, program: ir.Program) -> tuple[str, ir.Expr | None, str, ir.Expr | None] | None:
    """A prox term's first argument as (parameter, K, side, offset): ``p`` -> (p, None, "left", None),
    ``K @ p`` -> (p, K, "left", None) with K known before the run, ``p @ K`` -> (p, K, "right", None),
    and any of those plus or minus an expression c of the data -> the same with offset c (``-c`` as
    ``negative(c)``); anything else -> None."""
    if isinstance(a, ir.Prim) and a.op in ("add", "subtract") and len(a.args) == 2 and not a.kwargs:
        left, right = a.args
        for inner, c, negate in ((left, right, a.op == "subtract"), (right, left, False)):
            found = _linear_arg(inner, program) if _of_data(c, program) else None
            if found is not None and found[3] is None:
                if a.op == "subtract" and inner is right:  # c - K p: not a term of K p
                    return None
                offset = ir.Prim("negative", (c,), span=c.span) if negate else c
                return found[0], found[1], found[2], offset
        return None
    if isinstance(a, ir.Ref) and a.kind == "param":
        return a.name, None, "left", None
    if isinstance(a, ir.Prim) and a.op == "matmul" and len(a.args) == 2 and not a.kwargs:
        k, p = a.args
        if isinstance(p, ir.Ref) and p.kind == "param" and _of_data(k, program):
            return p.name, k, "left", None
        p, k = a.args  # p @ K: a linear map acting on a matrix parameter's rows
        if isinstance(p, ir.Ref) and p.kind == "param" and _of_data(k, program):
            return p.name, k, "right", None
    return None


def _prox_term(sign: float, e: ir.Expr, program: ir.Program, names, method: str) -> ProxTerm | None:
    weight, f = _factor(e, program)
    term = None
    if isinstance(f, ir.Prim) and f.op in names and f.args and all(_of_data(a, program) for a in f.args[1:]) \
            and not f.kwargs and (found := _linear_arg(f.args[0], program)):
        term = ProxTerm(found[0], weight, f.op, tuple(f.args[1:]), expr=e, span=e.span, linear=found[1],
                        linear_side=found[2], offset=found[3])
    elif isinstance(f, ir.Block) and f.origin in program.proxes and len(f.bindings) == 1 \
            and (found := _linear_arg(f.bindings[0][1], program)):
        term = ProxTerm(found[0], weight, f.origin, (), user=True, expr=e, span=e.span, linear=found[1],
                        linear_side=found[2], offset=found[3])
    if term is None or (term.fn in SMOOTH and (term.linear is not None or term.offset is not None)):
        return None
    if sign < 0:
        raise TypeError_(f"-{term.fn}(...) is concave: a proximal method takes convex terms added to the "
                         "objective", e.span, "add it with a positive weight, or use method = gradient")
    if (term.linear is not None or term.offset is not None) and method not in SPLITTING:
        what = "K @ " + term.param if term.linear is not None else term.param + " + c"
        raise TypeError_(f"{term.fn}({what}) is a prox term through {'a linear' if term.offset is None else 'an affine'} "
                         f"map, which method = {method} cannot take", f.span,
                         f"method = admm or pdhg take c * {term.fn}(K @ p + b) (K a matrix and b known before the "
                         f"run); {method} takes c * {term.fn}(p)")
    if method in SPLITTING and term.fn in NONCONVEX:
        raise TypeError_(f"{term.fn}(...) is not convex, and method = {method} splits only convex terms", f.span,
                         f"method = proximal or fista take {term.fn}(p) (a projected gradient step)")
    return term


def _check_smooth(smooth: ir.Expr, program: ir.Program, method: str) -> None:
    for n in walk(smooth):
        if isinstance(n, ir.Prim) and n.op in NONSMOOTH and any(r.kind == "param" for r in refs(n)):
            on_param = n.args and isinstance(n.args[0], ir.Ref) and n.args[0].kind == "param"
            what = f"{n.op}(...)" + ("" if on_param else " of an expression of the parameters")
            hint = ("write it as a term of the objective, c * " + n.op + "(p), with c a constant"
                    if on_param else "method = admm or pdhg take a term c * f(K @ p) with K a linear map "
                    "known before the run; method = gradient takes its subgradient")
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
        term = _prox_term(sign, e, program, names, method)
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
    from .compose_prox import composable, compose_terms

    if method == "admm":
        plain, dual, composed = (), tuple(terms), ()
    elif method == "pdhg":  # the terms on a parameter that compose stay a primal prox; the rest get duals
        by_param: dict[str, list[ProxTerm]] = {}
        for t in terms:
            if t.linear is None and t.offset is None:
                by_param.setdefault(t.param, []).append(t)
        primal = {p for p, group in by_param.items() if composable(group, program)}
        plain = tuple(t for t in terms if t.linear is None and t.offset is None and t.param in primal)
        dual = tuple(t for t in terms if not any(t is q for q in plain))
        composed = compose_terms(plain, program)
    else:
        plain, dual, composed = tuple(terms), (), compose_terms(terms, program)
    options = _options(program, method, smooth_expr, dual)
    return program.replace(split=ProxSplit(smooth_expr, plain, composed, dual, options, span=objective.span))


# The step budget up to which a prox method's loop is compiled for compile time (``compile=fast``).
# XLA's elemental emitter without tree reductions (``backend/compile_options.fast_compile``) halves
# the compile of these loops (lasso 1000 x 2000 under fista: 0.20 s instead of 0.43; the gallery's
# examples: 0.3-0.7 s less) at the same cost a step where a step is a gemv (lasso: 164 us instead of
# 180; TV n = 10000: equal), and at a fixed ~6 us more where a step is a few microseconds (the
# cancer table's sparse logistic fista: 15 us instead of 9): over 20000 steps at most ~0.12 s,
# under the compile time it saves.  Longer budgets keep XLA's defaults.  The budget is the one
# written (a fit's steps= override keeps the decision, as it keeps the rest of the plan).
FAST_COMPILE_STEPS = 20000


def _options(program: ir.Program, method: str, smooth: ir.Expr, dual: tuple) -> tuple:
    """The method's settings, as decided: admm's rho (written or 1) and its x-update; for every
    method, how its loop is compiled (``compile=fast`` for a budget of ``FAST_COMPILE_STEPS`` or
    fewer steps)."""
    config = getattr(program.solve, "method_config", None)
    known = {"admm": ("rho",)}.get(method, ())
    given: dict[str, float] = {}
    if config is not None and config.kind == "call":
        if len(config.args) > len(known):
            raise ConfigError(f"method = {method} takes {len(known) or 'no'} argument{'s' * (len(known) != 1)}",
                              config.span, "e.g. method = admm(rho = 1.0)" if known else f"method = {method}")
        names = list(config.name_spans) or [v.span for _, v in config.kwargs]
        pairs = [(k, v, v.span) for k, v in zip(known, config.args)] + \
                [(k, v, at) for (k, v), at in zip(config.kwargs, names)]
        for name, v, at in pairs:
            if name not in known:
                raise ConfigError(f"method = {method} has no argument '{name}'", at,
                                  f"its arguments: {', '.join(known)}" if known else "it takes none")
            if v.kind != "number" or not float(v.value) > 0:
                raise ConfigError(f"{name} must be a positive number", v.span, f"e.g. {method}({name} = 1.0)")
            given[name] = float(v.value)
    compile_ = (("compile", "fast"),) if getattr(program.solve, "steps", 0) <= FAST_COMPILE_STEPS else ()
    if method != "admm":
        return compile_
    real = all(d.domain.name == "real" for d in program.params.values())
    degree = polynomial_degree(smooth, program)
    quadratic = real and degree is not None and degree <= 2
    identity = all(t.linear is None for t in dual)  # every term on a parameter itself (plus an offset)
    return (("rho", given.get("rho", 1.0)), ("rho_update", "balance"),
            ("x_update", ("cg" if identity else "cholesky") if quadratic else "gradient")) + compile_
