"""IR -> readable text, each expression annotated with its inferred type."""

from __future__ import annotations

from dataclasses import fields, is_dataclass

from . import nodes as ir


def expr(e, types: dict[int, str] | None = None) -> str:
    types = types or {}
    text = _expr(e, types)
    return text


def _typed(e, text: str, types) -> str:
    t = types.get(id(e))
    return f"{text} : {t}" if t and not isinstance(e, (ir.Lit, ir.Ref)) else text


def _expr(e, types) -> str:
    if isinstance(e, ir.Lit):
        return "None" if e.value is None else repr(e.value)
    if isinstance(e, ir.Ref):
        return f"{e.kind}:{e.name}" if e.kind not in ("local",) else e.name
    if isinstance(e, ir.Prim):
        parts = [_expr(a, types) for a in e.args] + [f"{k}={_expr(v, types)}" for k, v in e.kwargs]
        return _typed(e, f"{e.op}({', '.join(parts)})", types)
    if isinstance(e, ir.Dist):
        parts = [_expr(a, types) for a in e.args] + [f"{k}={_expr(v, types)}" for k, v in e.kwargs]
        return f"dist.{e.name}({', '.join(parts)})"
    if isinstance(e, ir.ArrayLit):
        return _typed(e, "[" + ", ".join(_expr(i, types) for i in e.items) + "]", types)
    if isinstance(e, ir.Index):
        items = []
        for i in e.items:
            if isinstance(i, ir.SliceIR):
                b = lambda x: "" if x is None else _expr(x, types)
                items.append(f"{b(i.start)}:{b(i.stop)}" + (f":{b(i.step)}" if i.step is not None else ""))
            else:
                items.append(_expr(i, types))
        return _typed(e, f"{_expr(e.value, types)}[{', '.join(items)}]", types)
    if isinstance(e, ir.CallFn):
        return _typed(e, f"call {e.name}({', '.join(_expr(a, types) for a in e.args)})", types)
    if isinstance(e, ir.Block):
        binds = "; ".join(f"let {n} = {_expr(v, types)}" for n, v in e.bindings)
        return _typed(e, f"{{ {binds}; {_expr(e.value, types)} }}", types)
    if isinstance(e, ir.Expect):
        head = f"expect({e.particles}" + (f", reduce=renyi(alpha={e.alpha})" if e.reduce != "mean" else "") + ")"
        body = "; ".join([statement(st, types) for st in e.stmts] + [_expr(e.value, types)])
        return f"{head} {{ {body} }}"
    if isinstance(e, ir.LogDensity):
        return f"log{'p' if e.block == 'model' else 'q'}({e.block}, {e.draw})"
    if isinstance(e, ir.VIObjective):
        return f"{e.kind}({e.alpha}, {e.particles})" if e.kind == "renyi" else f"{e.kind}({e.particles})"
    return repr(e)


def statement(st, types=None) -> str:
    """A statement of a model, guide or expect block; a sample site shows its estimator, and
    ``# chosen`` when a pass chose it (the user wrote none)."""
    types = types or {}
    if isinstance(st, ir.LetStmt):
        return f"let {st.name} = {_expr(st.value, types)}"
    if isinstance(st, ir.Factor):
        return f"target += {_expr(st.value, types)}"
    if isinstance(st, ir.DrawGuide):
        return f"{st.name} ~ guide"
    if isinstance(st, ir.Sample):
        left = _expr(st.obs, types) if st.obs is not None else st.name  # an observed slice: data:y[5:]
        if st.domain is not None or st.shape is not None:
            shape = f"[{', '.join(map(str, st.shape))}]" if st.shape else ""
            left += f": {st.domain if st.domain is not None else 'real'}{shape}"
        right = f"family {config(st.family)}" if st.family is not None else _expr(st.dist, types)
        text = f"{left} ~ {right}" + ("  (observed)" if st.observed else "")
        if st.via is not None:
            text += f" via {config(st.via)}" + ("  # chosen" if st.chosen else "")
        return text
    return repr(st)


def _block(word: str, block) -> list[str]:
    return [f"{word} {{"] + [f"  {statement(st)}" for st in block.stmts] + ["}"]


def program(p: ir.Program, infer=None) -> str:
    """The whole program; ``infer(expr) -> {id: type}`` annotates types where given."""
    types = lambda e: infer(p, e) if infer else {}
    out = []
    for n, v in p.dims.items():
        out.append(f"dim {n} = {v}")
    for n, v in p.consts.items():
        out.append(f"const {n} = {v!r}")
    for n, d in p.data.items():
        src = f"  <- load({d.source[0]!r}, {d.source[1]!r})" if d.source else ""
        out.append(f"data {n}: {d.type}{src}")
    for n, d in p.params.items():
        init = f" = {_expr(d.init, {})}" if d.init is not None else ""
        out.append(f"param {n}: {d.type} in {d.domain}{init}")
    for n, f in p.fns.items():
        out.append(f"fn {n}({', '.join(f.params)}) = {_expr(f.body, {})}")
    for n, d in p.proxes.items():
        out.append(f"prox {n}({', '.join(d.params)}) = {_expr(d.body, {})}")
    for n, e in p.lets.items():
        out.append(f"let {n} = {expr(e, types(e))}")
    if p.model is not None:
        out += _block("model", p.model)
    if p.guide is not None:
        if p.guide.family is not None:
            via = (f" via {config(p.guide.via)}" + ("  # chosen" if p.guide.via.span is None else "")
                   if p.guide.via is not None else "")
            out.append(f"guide = {config(p.guide.family)}{via}")
        else:
            out += _block("guide", p.guide)
    for o in p.objectives:
        each = ", each entry" if o.each else ""
        out.append(f"objective {o.name} ({o.sense}{each}) = {expr(o.value, types(o.value))}")
    for low in p.lowers.values():
        out += lower(low, types)
    for c in p.constraints:
        out.append(f"constraint {c.label}: {expr(c.g, {})} {'<=' if c.kind == 'le' else '=='} 0")
    if p.constrained is not None:
        for pr in p.constrained.projections:
            args = ", ".join(_expr(a, {}) for a in pr.args)
            out.append(f"constraints: project {pr.param} onto {pr.set}({args})  [{', '.join(pr.labels)}]")
        if p.constrained.rest:
            out.append(f"constraints: {config(p.constrained.method)}: "
                       + ", ".join(c.label for c in p.constrained.rest))
    if p.split is not None:
        out.append(f"split: smooth = {expr(p.split.smooth, types(p.split.smooth))}")
        for t in p.split.terms:
            args = "".join(f", {_expr(a, {})}" for a in t.args)
            out.append(f"  prox {t.param}: {_expr(t.weight, {})} * {t.fn}({t.param}{args})"
                       + ("  (declared prox)" if t.user else ""))
        for c in p.split.composed:
            out.append(f"  composed {c.param}: {c.rule} [{', '.join(t.fn for t in c.terms)}]")
        for t in p.split.dual:
            args = "".join(f", {_expr(a, {})}" for a in t.args)
            arg = t.param if t.linear is None else f"{_expr(t.linear, {})} @ {t.param}" if t.linear_side == "left" \
                else f"{t.param} @ {_expr(t.linear, {})}"
            arg += "" if t.offset is None else f" + {_expr(t.offset, {})}"
            out.append(f"  dual {t.param}: {_expr(t.weight, {})} * {t.fn}({arg}{args})"
                       + ("  (declared prox)" if t.user else ""))
        if p.split.options:
            out.append("  method: " + " ".join(f"{k}={v}" for k, v in p.split.options))
    if p.aggregate is not None:
        a = p.aggregate
        entries = ", ".join(f"{'+' if s > 0 else '-'}{n}" for n, s in zip(a.names, a.signs))
        out.append(f"vector objective [{entries}] aggregator {config(a.aggregator)}")
    for n, e in p.reports.items():
        out.append(f"report {n} = {expr(e, types(e))}")
    if p.solve is not None and not isinstance(p.solve, dict):
        s = p.solve
        steps_by = f"method={s.method}" if p.split is not None else f"optimizer={config(s.optimizer)}"
        out.append(f"solve: {steps_by} steps={s.steps} batch={s.batch} seed={s.seed} "
                   f"log_every={s.log_every}" + (f" aggregator={s.aggregator}" if s.aggregator else ""))
    if p.optimizer is not None:
        out.append(f"optimizer {config(p.optimizer.config)}"
                   + (" on the raveled parameters" if p.optimizer.raveled else ""))
    if getattr(p, "vi_defaults", None) is not None:
        v = p.vi_defaults
        out.append(f"vi defaults: start={v.start} average={v.average} stop=elbo_settled(every={v.every}, "
                   f"z={v.z:g})" + (" reject=nonfinite" if getattr(v, "reject_nonfinite", False) else "")
                   + (f" compile={v.loop_compile}" if getattr(v, "loop_compile", "optimized") != "optimized" else "")
                   + "  # chosen")
    return "\n".join(out)


def lower(low, types) -> list[str]:
    """A lower block: its params, objective, inner solve and hypergradient method (once chosen)."""
    out = [f"lower {low.name} {{"]
    for d in low.params:
        init = f" = {_expr(d.init, {})}" if d.init is not None else ""
        out.append(f"  param {d.name}: {d.type} in {d.domain}{init}")
    o = low.objective
    out.append(f"  objective ({o.sense}) = {expr(o.value, types(o.value))}")
    for c in low.constraints:
        out.append(f"  constraint {c.label}: {expr(c.g, {})} {'<=' if c.kind == 'le' else '=='} 0")
    s = low.solve
    opt = low.optimizer.config if low.optimizer is not None else s.optimizer
    out.append(f"  inner solve: optimizer={config(opt)} steps={s.steps}")
    if low.method is not None:
        out.append(f"  hypergradient {config(low.method)}" + ("  # chosen" if low.chosen else ""))
    return out + ["}"]


def config(v: ir.ConfigValue) -> str:
    if v.kind == "call":
        parts = [config(a) for a in v.args] + [f"{k}={config(a)}" for k, a in v.kwargs]
        return f"{v.value}({', '.join(parts)})"
    if v.kind == "array":
        return "[" + ", ".join(config(a) for a in v.args) + "]"
    if v.kind == "steps":
        return f"<solve steps: {v.value}>"
    return str(v.value)


def tree(node, indent: str = "") -> str:
    """A dataclass tree (the AST) as an indented outline; spans shown as line:col."""
    if isinstance(node, tuple):
        return "\n".join(tree(n, indent) for n in node) if node else indent + "()"
    if not is_dataclass(node):
        return indent + repr(node)
    span = getattr(node, "span", None)
    head = indent + type(node).__name__ + (f"  @{span.line}:{span.col}" if span else "")
    lines = [head]
    for f in fields(node):
        if f.name == "span":
            continue
        value = getattr(node, f.name)
        if is_dataclass(value) or (isinstance(value, tuple) and value and is_dataclass(value[0])):
            lines.append(f"{indent}  {f.name}:")
            lines.append(tree(value, indent + "    "))
        else:
            lines.append(f"{indent}  {f.name}: {value!r}")
    return "\n".join(lines)
