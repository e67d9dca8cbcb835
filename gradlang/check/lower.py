"""Lower blocks of a bilevel program: ``lower NAME { param ...; let ...; minimize ...; solve { ... } }``.

A lower block declares the lower level's own parameters, its objective and how to solve it::

    param log_lam: real = 0
    lower inner {
      param w: real[D] = 0
      minimize mean((Xtr @ w - ytr)^2) + exp(log_lam) * sumsq(w)
      solve { optimizer = sgd(lr = 0.1); steps = 100 }
    }
    minimize mean((Xval @ inner.w - yval)^2)

Inside the block the upper parameters (``log_lam``) are fixed inputs and the block's own
parameters are its variables; ``inner.w`` elsewhere is the lower solution ``w*(log_lam)``.  Both are
the IR reference ``Ref("lower", "inner.w")``; the block's parameters are declared under that
dotted name.  The block's lets are local to it (bindings of a block around its objective).  Its
``solve`` takes ``optimizer``, ``steps`` (100 unless written) and ``bilevel`` (the hypergradient
method, checked against the registry by the pass bilevel_to_hypergrad).  Its ``subject to { ... }``
(one block) holds constraints of its parameters, which may read the upper ones (``w <= exp(log_r)``,
``y <= x``): ``ConstraintIR`` as the program's, in ``LowerIR.constraints``.
"""

from __future__ import annotations

from dataclasses import replace

from ..errors import ConfigError, NameError_, TypeError_, did_you_mean
from ..ir import nodes as ir
from ..ir.plan import ConstraintIR, LowerIR
from ..ir.visit import refs, rewrite
from ..syntax import ast
from . import config
from .names import keyword_span, name_span, unsupported

INNER_STEPS = 100  # a lower block's steps unless its solve writes them (run at every upper step)
INNER_FIELDS = ("optimizer", "steps", "bilevel")


def declare_lower(checker, s: ast.Lower) -> None:
    """Declare the block's name and its parameters' names before any statement is checked, so
    that ``NAME.p`` resolves wherever it is written."""
    scope = checker.scope
    if s.name in scope.kinds:
        raise NameError_(f"'{s.name}' is declared twice", name_span(s.span, s.name),
                         f"first declared at {checker.out.spans[s.name]}; rename one of them")
    scope.kinds[s.name] = "lower"
    checker.out.spans[s.name] = s.span
    _declare_nested(checker, s, s.name)


def _declare_nested(checker, s: ast.Lower, path: str) -> None:
    """``lower mid { lower inner { ... } }``: ``mid.inner`` with its params, recursively."""
    params = tuple(st.name for st in s.body if isinstance(st, ast.Param))
    checker.scope.lowers[path] = params
    for st in s.body:
        if isinstance(st, ast.Lower):
            if st.name in params or f"{path}.{st.name}" in checker.scope.lowers:
                raise NameError_(f"'{st.name}' is declared twice in lower {path}", name_span(st.span, st.name),
                                 "rename one of them")
            _declare_nested(checker, st, f"{path}.{st.name}")


def lower_block(checker, s: ast.Lower, path: str | None = None, outer: dict | None = None) -> LowerIR:
    """The block as a ``LowerIR``: its parameters, its objective (lets bound around it), its solve.

    A nested block (``lower inner`` inside ``lower mid``) is checked here too and put in the
    program's lowers under its path ``mid.inner`` (its params ``mid.inner.c``): inside it the
    enclosing blocks' params (``b``, i.e. ``mid.b``) are its fixed inputs, as the upper ones are;
    inside ``mid``, ``inner.c`` is its solution (``mid.inner.c`` outside ``mid``).  ``outer``: the
    enclosing blocks' params by local name -> their lower name."""
    path, outer = path or s.name, outer or {}
    params: dict[str, ir.ParamDecl] = {}
    nested: list[ast.Lower] = []
    lets: list[ast.Let] = []
    objectives, solves, subjects = [], [], []
    for st in s.body:
        if isinstance(st, ast.Param):
            if st.name in params:
                raise NameError_(f"'{st.name}' is declared twice in lower {s.name}", name_span(st.span, st.name), None)
            if st.name in outer:
                raise NameError_(f"param '{st.name}' of lower {path} has the name of a param of a block it is "
                                 "nested in", name_span(st.span, st.name), "rename one of them")
            if st.name in checker.scope.kinds:
                raise NameError_(f"param '{st.name}' of lower {s.name} has the name of a declaration outside it",
                                 name_span(st.span, st.name),
                                 f"that one is declared at {checker.out.spans.get(st.name)}; rename one of them")
            decl = checker.param(st)
            params[st.name] = replace(decl, name=f"{path}.{st.name}")
        elif isinstance(st, ast.Let):
            lets.append(st)
        elif isinstance(st, ast.Objective):
            objectives.append(st)
        elif isinstance(st, ast.Solve):
            solves.append(st)
        elif isinstance(st, ast.Lower):
            nested.append(st)
        elif isinstance(st, ast.SubjectTo):
            if subjects:
                raise NameError_(f"lower {s.name} has one subject to block", keyword_span(st.span, "subject"),
                                 "put every constraint of the lower level in it")
            subjects.append(st)
        elif isinstance(st, ast.ObjectiveSet):
            raise TypeError_("a lower level has one objective", st.span, "write minimize <expression>")
        else:
            raise TypeError_(f"a lower block holds param, let, minimize or maximize, and solve, not "
                             f"{type(st).__name__.lower()}", st.span, "declare it outside the block")
    word = keyword_span(s.span, "lower")
    if not params:
        raise TypeError_(f"lower {path} has no parameters", word, "declare one inside it: param w: real[D] = 0")
    if len(objectives) != 1:
        where = objectives[1].span if objectives else word
        raise TypeError_(f"lower {path} needs exactly one objective", where,
                         "write one minimize <expression> inside the block")
    inside = {**outer, **{n: p.name for n, p in params.items()}}
    scope = checker.scope
    saved = scope.lower_prefixes
    scope.lower_prefixes = (path + ".", *saved)  # inside the block, inner.c is path.inner.c
    try:
        for st in nested:
            checker.out.lowers[f"{path}.{st.name}"] = lower_block(checker, st, f"{path}.{st.name}", inside)
        objective = _objective(checker, path, params, lets, objectives[0], outer)
        constraints = _constraints(checker, path, params, lets, subjects[0], outer) if subjects else ()
    finally:
        scope.lower_prefixes = saved
    return LowerIR(path, tuple(params.values()), objective, _solve(checker, solves),
                   constraints=constraints, span=s.span)


def parent(block: str) -> str | None:
    """The lower block that ``block`` is nested in (``mid`` for ``mid.inner``), None at the top."""
    head, dot, _ = block.rpartition(".")
    return head if dot else None


def _objective(checker, block: str, params: dict, lets: list[ast.Let], o: ast.Objective,
               outer: dict) -> ir.ObjectiveIR:
    """The objective with the block's lets bound around it and its parameters as lower refs."""
    value = _local_expr(checker, block, params, lets, o.value, outer)
    return ir.ObjectiveIR(block, o.sense, value, span=o.value.span)


def _local_expr(checker, block: str, params: dict, lets: list[ast.Let], e, outer: dict) -> ir.Expr:
    """An expression of the block (its objective, a side of a constraint): the block's lets bound
    around it, its parameters (and the enclosing blocks', ``outer``) as lower refs."""
    names = {**outer, **{n: p.name for n, p in params.items()}}
    local: frozenset = frozenset(names)
    bindings = []
    for let in lets:
        if let.name in names or let.name in checker.scope.kinds:
            raise NameError_(f"let '{let.name}' in lower {block} has the name of another declaration",
                             name_span(let.span, let.name), "rename it")
        bindings.append((let.name, checker.resolve.expr(let.value, local)))
        local = local | {let.name}
    value = checker.resolve.expr(e, local)
    if bindings:
        value = ir.Block(tuple(bindings), value, span=e.span)

    def ref(r: ir.Ref) -> ir.Expr:
        if r.kind == "local" and r.name in names and r.name not in bound:
            return ir.Ref("lower", names[r.name], span=r.span)
        if r.kind == "lower" and not r.name.startswith(block + ".") \
                and not (block + ".").startswith(r.name.rpartition(".")[0] + "."):  # an enclosing block's
            raise unsupported("a lower level that uses another lower level's solution is", r.span,
                              "a lower level depends on the upper parameters, the blocks it is nested in "
                              "and the blocks nested in it; nest one block inside the other")
        return r

    bound = {name for name, _ in bindings}

    return rewrite(value, {ir.Ref: ref})


def _constraints(checker, block: str, params: dict, lets: list[ast.Let], s: ast.SubjectTo, outer: dict) -> tuple:
    """The block's ``subject to``: each ``lhs <= rhs`` (``>=``, ``==``) as ``g(x, y) <= 0`` (``== 0``)
    with ``g = lhs - rhs``, as the program's constraints (``check.constraints``); ``g`` may couple
    the upper parameters ``x`` and the block's own ``y`` (LV-HBA's lower constraint)."""
    from .constraints import check_comparison, new_label, standard_form

    out, labels = [], set()
    for c in s.constraints:
        value = _local_expr(checker, block, params, lets, c.value, outer)
        bindings = value.bindings if isinstance(value, ir.Block) else ()
        value = value.value if isinstance(value, ir.Block) else value
        check_comparison(value, c.value.span, "e.g. y <= x")
        if not any(r.kind == "lower" for r in refs(value)):
            raise TypeError_(f"this constraint of lower {block} does not involve its parameters", c.value.span,
                             "a lower level's constraint restricts its own parameters (it may also read the "
                             "upper ones); a constraint on the upper parameters alone belongs outside the block")
        label = new_label(checker, c, labels)
        kind, g = standard_form(value)
        if bindings:  # the block's lets around the constraint
            g, value = ir.Block(bindings, g, span=value.span), ir.Block(bindings, value, span=value.span)
        out.append(ConstraintIR(label, kind, g, value, span=c.value.span))
    return tuple(out)


def _solve(checker, solves: list[ast.Solve]):
    """The block's solve settings: optimizer, steps (INNER_STEPS unless written) and bilevel."""
    for s in solves:
        for f in s.fields:
            if f.name in config.FIELDS and f.name not in INNER_FIELDS:
                raise ConfigError(f"solve field '{f.name}' has no meaning in a lower block", name_span(f.span, f.name),
                                  f"a lower block's solve sets {', '.join(INNER_FIELDS)}; "
                                  "set the others in the program's solve")
            if f.name not in config.FIELDS:
                raise ConfigError(f"unknown solve field '{f.name}'", name_span(f.span, f.name),
                                  did_you_mean(f.name, list(INNER_FIELDS)) or f"known: {', '.join(INNER_FIELDS)}")
    settings = config.check_solve(solves, checker.out)
    if "steps" not in settings.spans:
        settings.steps = INNER_STEPS
    return settings


def lower_param(program: ir.Program, name: str) -> ir.ParamDecl | None:
    """The declaration of the lower parameter ``NAME.p`` (None when there is none)."""
    block, _, _ = name.rpartition(".")
    low = program.lowers.get(block)
    return next((p for p in low.params if p.name == name), None) if low is not None else None
