"""Checking model and guide blocks: which sites are observed, typed latents, a guide that covers
exactly the model's latents, per-site and whole-guide families, estimator words."""

from __future__ import annotations

from dataclasses import replace

from ..errors import GradlangError, NameError_, TypeError_
from ..ir import nodes as ir
from ..ir.visit import refs, walk
from ..source import Span
from ..syntax import ast
from .config_value import config_value
from .spans import keyword_span, name_span


def _not_data(checker, expr, data_lets: set, seen: set) -> ir.Ref | None:
    """The first reference through which ``expr`` depends on something other than data, consts
    and dims (a param, a latent, a model let of those), following top-level lets and the bodies
    of user functions; None when it is computed from data alone."""
    for node in walk(expr):
        if isinstance(node, ir.CallFn) and ("fn", node.name) not in seen:
            seen.add(("fn", node.name))
            fn = checker.scope.fns.get(node.name)
            body = _resolved(lambda: checker.resolve.fn_body(fn)) if fn is not None else None
            # a function's own parameters are the arguments, walked above
            bad = body is not None and _not_data(checker, body, set(fn_param_names(fn)), seen)
            if bad:
                return bad
        if not isinstance(node, ir.Ref) or node.kind in ("data", "const", "dim", "builtin"):
            continue
        if node.kind == "local" and node.name in data_lets:
            continue
        if node.kind == "let":
            if ("let", node.name) in seen:
                continue
            seen.add(("let", node.name))
            let = getattr(checker, "top_lets", {}).get(node.name)
            value = _resolved(lambda: checker.resolve.expr(let.value)) if let is not None else None
            bad = value is not None and _not_data(checker, value, set(), seen)
            if bad:
                return bad
            continue
        return node
    return None


def fn_param_names(fn: ast.Fn) -> list[str]:
    return [p.name for p in fn.params]


def _resolved(resolve):
    """``resolve()``, or None when it fails: the declaration's own check reports that error."""
    try:
        return resolve()
    except GradlangError:
        return None


def model_block(checker, block: ast.Model) -> ir.ModelIR:
    """The model's statements.  A sample statement is observed when its left side is data, a
    model let computed from data alone, or a top-level let computed from data alone
    (``let ly = log(y)`` then ``ly ~ normal(mu, s)``); the latter enters the model's IR as a
    local let reading the top-level one, so the site's value is that let's value.  A top-level
    let that depends on a param on the left of ``~`` is an error: its density would not be one of
    the data."""
    resolve, kinds = checker.resolve, checker.scope.kinds
    top_lets = getattr(checker, "top_lets", {})
    local: frozenset = frozenset()
    data_lets: set[str] = set()
    labels: dict[str, int] = {}  # observed sites' names in the trace, and how often each is taken
    stmts = []
    for s in block.body:
        if isinstance(s, ast.Let):
            value = resolve.expr(s.value, local)
            if _not_data(checker, value, data_lets, set()) is None:
                data_lets.add(s.name)
            stmts.append(ir.LetStmt(s.name, value, span=s.span))
            local = local | {s.name}
        elif isinstance(s, ast.Sample):
            top_let = s.name in top_lets and s.name not in local and kinds.get(s.name) == "let"
            if top_let:
                where = name_span(s.span, s.name)
                bad = _not_data(checker, ir.Ref("let", s.name, span=where), set(), set())
                if bad is not None:
                    raise TypeError_(f"'{s.name}' is a let that depends on {bad.kind} '{bad.name}': only data, or a "
                                     "let computed from data alone, can be observed", where,
                                     "write the distribution of the data itself (e.g. y ~ normal(X @ w, s)), "
                                     "or add a density term with target += log_prob(...)")
                stmts.append(ir.LetStmt(s.name, ir.Ref("let", s.name, span=where), span=s.span))
                local = local | {s.name}
                data_lets.add(s.name)
            observed = kinds.get(s.name) == "data" or s.name in data_lets
            if s.index is not None and not observed:
                raise _not_indexable(checker, s, local)
            if observed and s.type is not None:
                raise TypeError_(f"'{s.name}' is data: its type is declared with the data", s.type.span, None)
            if observed and s.via is not None:
                raise TypeError_(f"'{s.name}' is observed: it is not sampled, so it has no estimator", s.via.span, None)
            if s.via is not None:
                raise TypeError_("estimators belong to the guide (or to expect blocks), not to the model",
                                 s.via.span, f"write `{s.name} ~ ... via {ast_word(s.via)}` in the guide")
            site = resolve.sample(s, local, observed)
            if observed:
                site = _observed_site(checker, s, site, local, labels)
            stmts.append(site)
            if not observed:
                local = local | {s.name}
        elif isinstance(s, ast.Target):
            stmts.append(ir.Factor(resolve.expr(s.value, local), span=s.span))
        else:
            raise TypeError_("a model block holds sample statements, lets and 'target +='",
                             keyword_span(s.span, ""), "declare parameters and functions at the top level")
    return ir.ModelIR(tuple(stmts), span=block.span)


def _left_span(s: ast.Sample):
    """The span of an indexed left side, ``y[5:]``: from the name to the closing bracket."""
    start = name_span(s.span, s.name)
    last = s.index[-1] if s.index else None
    end = getattr(last, "span", None)
    if start is None or end is None:
        return start
    line = start.source.line(end.end_line) if start.source is not None else ""
    close = line.find("]", end.end_col - 1)
    return Span(start.line, start.col, end.end_line, close + 2 if close >= 0 else end.end_col, start.source)


def _observed_site(checker, s: ast.Sample, site: ir.Sample, local: frozenset, labels: dict) -> ir.Sample:
    """An observed site's value (the data, or its slice or gather ``y[5:]``) and its name in
    NumPyro's trace: the left side as written, numbered when the model observes it again."""
    from ..syntax.unparse import expr as unparse_expr

    obs = None
    label = s.name
    if s.index is not None:
        where = _left_span(s)
        left = ast.Index(ast.Name(s.name, span=name_span(s.span, s.name)), s.index, span=where)
        obs = checker.resolve.expr(left, local)
        label = unparse_expr(left)
    labels[label] = labels.get(label, 0) + 1
    if labels[label] > 1:
        label = f"{label}#{labels[label]}"
    return replace(site, obs=obs, label=label)


def _not_indexable(checker, s: ast.Sample, local: frozenset) -> GradlangError:
    """The left side of an indexed sample statement names something other than data."""
    where = name_span(s.span, s.name)
    kind = "latent" if s.name in local else checker.scope.kinds.get(s.name)
    if kind is None:
        return NameError_(f"unknown name '{s.name}'", where,
                          "only data (or a let computed from data alone) can be indexed on the left of '~'")
    what = {"latent": "a latent", "param": "a param", "let": "a let that is not computed from data alone",
            "const": "a const", "dim": "a dim"}.get(kind, f"a {kind}")
    hint = (f"draw the whole latent ({s.name}: real[N] ~ ...) and use {s.name}[...] in the distributions "
            "that depend on it") if kind == "latent" else \
        "only data, or a let computed from data alone, can be observed in part (y[5:] ~ ...)"
    return TypeError_(f"'{s.name}' is {what}: only data can be indexed on the left of '~'", where, hint)


def ast_word(e) -> str:
    return e.func.id if isinstance(e, ast.Call) and isinstance(e.func, ast.Name) else getattr(e, "id", "...")


def guide_block(checker, block: ast.Guide) -> ir.GuideIR:
    resolve = checker.resolve
    local: frozenset = frozenset()
    stmts = []
    for s in block.body:
        if isinstance(s, ast.Param):
            checker.out.params[s.name] = checker.param(s)
        elif isinstance(s, ast.Let):
            stmts.append(ir.LetStmt(s.name, resolve.expr(s.value, local), span=s.span))
            local = local | {s.name}
        elif isinstance(s, ast.Sample):
            if s.index is not None:
                raise TypeError_("the guide draws whole latents: its left side cannot be indexed",
                                 _left_span(s), f"write {s.name} ~ ... for the whole latent")
            if checker.scope.kinds.get(s.name) != "latent":
                hint = f"'{s.name}' is data: the guide draws only latents" if checker.scope.kinds.get(s.name) == "data" \
                    else "the guide draws the model's latents"
                raise NameError_(f"the model has no latent '{s.name}'", name_span(s.span, s.name), hint)
            site = resolve.sample(s, local, observed=False, allow_family=True)
            check_family(site.family)
            stmts.append(site)
            local = local | {s.name}
        elif isinstance(s, ast.Fn):
            raise TypeError_("declare functions at the top level", keyword_span(s.span, "fn"), None)
        else:
            raise TypeError_("a guide block holds params, lets and sample statements", keyword_span(s.span, ""), None)
    return ir.GuideIR(tuple(stmts), None, span=block.span)


def guide_family(checker, s: ast.GuideFamily) -> ir.GuideIR:
    family = config_value(s.family, checker.out)
    check_family(family)
    via = config_value(s.via, checker.out) if s.via is not None else None
    return ir.GuideIR((), family, span=s.span, via=via)


def check_family(family: ir.ConfigValue | None) -> None:
    if family is None:
        return
    from ..lib.families import FAMILIES

    FAMILIES.get(family.value, family.span)


def cross_check(checker) -> None:
    """The guide draws every latent of the model, once, after what it depends on."""
    model, guide = checker.out.model, checker.out.guide
    if guide is not None and model is None:
        raise TypeError_("a guide needs a model block", keyword_span(guide.span, "guide"), None)
    if model is None:
        return
    latents = [s.name for s in model.stmts if isinstance(s, ir.Sample) and not s.observed]
    if guide is None:
        return  # a model alone: usable through expect blocks and logp
    if guide.family is not None:
        return
    drawn = [s.name for s in guide.stmts if isinstance(s, ir.Sample)]
    for name in drawn:
        if drawn.count(name) > 1:
            site = next(s for s in guide.stmts if isinstance(s, ir.Sample) and s.name == name)
            raise NameError_(f"the guide draws '{name}' twice", name_span(site.span, name), None)
    missing = [n for n in latents if n not in drawn]
    if missing:
        raise TypeError_(f"the guide has no distribution for latent{'s' if len(missing) > 1 else ''} "
                         f"{', '.join(repr(m) for m in missing)}", keyword_span(guide.span, "guide"),
                         f"add e.g. `{missing[0]} ~ mean_field` to the guide, or use guide = mean_field")
