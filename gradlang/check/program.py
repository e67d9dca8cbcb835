"""Check a parsed program and build its IR: declarations, ``use``, consts and overrides, domains,
objectives, reports and the solve block.  Errors of this stage are collected and raised together."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from pathlib import Path

import jax
import numpy as np

from ..backend.evaluate import Evaluator
from ..errors import (
    GradlangError,
    NameError_,
    TypeError_,
    collect,
    did_you_mean,
    known_list,
)
from ..ir import nodes as ir
from ..ir.visit import refs
from ..source import Source
from ..syntax import ast
from ..syntax.parser import parse
from . import config, ppl, shapes, types
from .names import Resolver, Scope, keyword_span, name_span, unsupported
from .constraints import constraints_block
from .lower import declare_lower, lower_block
from .objectives import check_objectives
from .uses import expand_uses

_KIND_OF = {ast.Dim: "dim", ast.Const: "const", ast.Data: "data", ast.Param: "param",
            ast.Let: "let", ast.Fn: "fn"}
_UNSUPPORTED = {
    ast.Extern: ("extern", "extern functions are", None),
    ast.Saddle: ("minimize", "saddle-point objectives are", None),
}


class Checker:
    def __init__(self, program: ast.Program, source: Source, overrides: dict | None):
        self.ast = program
        self.source = source
        self.overrides = dict(overrides or {})
        self.scope = Scope()
        self.resolve = Resolver(self.scope)
        self.out = ir.Program(source=source)
        self.scope.consts, self.scope.dims = self.out.consts, self.out.dims
        self.scope.typed = self.typed
        self.errors: list[GradlangError] = []

    def attempt(self, fn, *args):
        try:
            return fn(*args)
        except GradlangError as err:
            self.errors.append(err)
            return None

    # ---- the stage ----------------------------------------------------------------------------
    def run(self) -> ir.Program:
        stmts = expand_uses(self.ast.stmts, self.source, set())
        # top-level lets by name: one on the left of `~` in the model is an observed site, not a latent
        self.top_lets = {s.name: s for s in stmts if isinstance(s, ast.Let)}
        self.data_dims = {d.id for s in stmts if isinstance(s, ast.Data)
                          for d in (s.type.dims or ()) if isinstance(d, ast.Name)}
        self.declare(stmts)
        # a size bound by the data (N in `data y: real[N]`) is also a value: ones(N) / N
        self.bound_by_data = {n for n in self.data_dims if n not in self.scope.kinds}
        for name in self.bound_by_data:
            self.scope.kinds[name] = "dim"
        collect(self.errors)
        self.check_overrides()
        for s in stmts:
            self.attempt(self.statement, s)
        collect(self.errors)
        ppl.cross_check(self)
        self.check_lets()
        check_objectives(self, stmts)
        collect(self.errors)
        self.errors += shapes.check(self.out)
        collect(self.errors)
        self.out.solve = config.check_solve([s for s in stmts if isinstance(s, ast.Solve)], self.out)
        return self.out

    def declare(self, stmts) -> None:
        for s in stmts:
            kind = _KIND_OF.get(type(s))
            if isinstance(s, ast.Lower):
                self.attempt(declare_lower, self, s)
                continue
            if kind is None:
                self.declare_latents(s)
                continue
            if s.name in self.scope.kinds:
                first = self.out.spans[s.name]
                self.errors.append(NameError_(f"'{s.name}' is declared twice", name_span(s.span, s.name),
                                              f"first declared at {first}; rename one of them"))
                continue
            self.scope.kinds[s.name] = kind
            self.out.spans[s.name] = s.span
            if kind == "fn":
                self.scope.fns[s.name] = s

    def declare_latents(self, s) -> None:
        """A model's latents (known everywhere, usable inside model, guide and expect) and a guide's
        parameters (ordinary parameters of the program)."""
        if isinstance(s, ast.Model):
            if self.scope.has_model:
                raise NameError_("a program has one model block", keyword_span(s.span, "model"), None)
            self.scope.has_model = True
            for inner in s.body:
                if isinstance(inner, ast.Sample) and self.scope.kinds.get(inner.name) not in ("data",) \
                        and inner.name not in getattr(self, "top_lets", {}) and inner.index is None:
                    if inner.name in self.scope.kinds:
                        raise NameError_(f"'{inner.name}' is declared twice", name_span(inner.span, inner.name),
                                         f"first declared at {self.out.spans[inner.name]}")
                    self.scope.kinds[inner.name] = "latent"
                    self.out.spans[inner.name] = inner.span
        elif isinstance(s, (ast.Guide, ast.GuideFamily)):
            if self.scope.has_guide:
                raise NameError_("a program has one guide", keyword_span(s.span, "guide"), None)
            self.scope.has_guide = True
            for inner in (s.body if isinstance(s, ast.Guide) else ()):
                if isinstance(inner, ast.Param):
                    self.declare([inner])

    def check_overrides(self) -> None:
        consts = [n for n, k in self.scope.kinds.items() if k == "const"]
        for name in self.overrides:
            if name not in consts:
                hint = did_you_mean(name, consts) or (known_list(consts) if consts else "this program has no const")
                raise NameError_(f"--set {name}: no const named '{name}'", None, hint)

    # ---- statements ---------------------------------------------------------------------------
    def statement(self, s) -> None:
        if type(s) in _UNSUPPORTED:
            word, what, hint = _UNSUPPORTED[type(s)]
            raise unsupported(what, keyword_span(s.span, word or s.name), hint)
        if isinstance(s, (ast.Sample, ast.Target)):
            raise TypeError_(f"{'sample statements' if isinstance(s, ast.Sample) else chr(39) + 'target +=' + chr(39)}"
                             " belong in a model block", keyword_span(s.span, s.name if isinstance(s, ast.Sample) else "target"),
                             "write model { ... } around them, or use expect { ... } in an objective")
        if isinstance(s, ast.Model):
            self.out.model = ppl.model_block(self, s)
        elif isinstance(s, ast.Guide):
            self.out.guide = ppl.guide_block(self, s)
        elif isinstance(s, ast.GuideFamily):
            self.out.guide = ppl.guide_family(self, s)
        if isinstance(s, (ast.Dim, ast.Const)):
            value = self.constant(s.value) if s.name not in self.overrides else self.override(s)
            if isinstance(s, ast.Dim):
                if not (np.ndim(value) == 0 and np.isfinite(float(value)) and float(value) == int(value)
                        and 0 <= int(value) < 2**31):
                    raise TypeError_(f"dim {s.name} must be a non-negative integer", s.value.span,
                                     f"write e.g. dim {s.name} = 8")
                self.out.dims[s.name] = int(value)
            else:
                self.out.consts[s.name] = value
        elif isinstance(s, ast.Data):
            self.out.data[s.name] = self.data(s)
        elif isinstance(s, ast.Param):
            self.out.params[s.name] = self.param(s)
        elif isinstance(s, ast.Let):
            self.out.lets[s.name] = self.resolve.expr(s.value)
        elif isinstance(s, ast.Fn):
            names = [p.name for p in s.params]
            for i, p in enumerate(s.params):
                if p.name in names[:i]:
                    raise NameError_(f"parameter '{p.name}' of {s.name}() is named twice", p.span, None)
            self.out.fns[s.name] = ir.FnDecl(s.name, tuple(p.name for p in s.params),
                                             self.resolve.fn_body(s), span=s.span)
        elif isinstance(s, ast.SubjectTo):
            if self.out.constraints:
                raise NameError_("a program has one subject to block", keyword_span(s.span, "subject"),
                                 "put every constraint in it")
            self.out.constraints = constraints_block(self, s)
        elif isinstance(s, ast.Prox):
            self.out.proxes[s.name] = self.prox(s)
        elif isinstance(s, ast.Lower):
            self.out.lowers[s.name] = lower_block(self, s)
        elif isinstance(s, ast.Report):
            if s.name in self.out.reports or s.name in self.scope.kinds:
                raise NameError_(f"report '{s.name}' clashes with another name", s.span, None)
            self.out.reports[s.name] = self.resolve.expr(s.value)

    def prox(self, s: ast.Prox) -> ir.ProxDecl:
        """``prox f(v, t) = body``: the proximal operator of the user function ``f``,
        argmin_x f(x) + ||x - v||^2 / (2t), used for a term ``c * f(p)`` under a proximal method."""
        from ..lib.builtins import FUNCTIONS

        span = keyword_span(s.span, "prox")
        if s.name in FUNCTIONS:
            raise TypeError_(f"{s.name} is a built-in with its own prox", name_span(s.span, s.name),
                             "declare a prox for a function of your own")
        if self.scope.kinds.get(s.name) != "fn":
            raise NameError_(f"prox {s.name} is the proximal operator of a function {s.name}, which is not "
                             "declared", name_span(s.span, s.name), f"declare it: fn {s.name}(x) = ...")
        if s.name in self.out.proxes:
            raise NameError_(f"prox {s.name} is declared twice", span, None)
        names = [p.name for p in s.params]
        if len(names) != 2 or names[0] == names[1]:
            raise TypeError_(f"prox {s.name} takes two arguments: the point and the step, prox {s.name}(v, t)",
                             span, "it returns argmin_x f(x) + ||x - v||^2 / (2 t)")
        body = self.resolve.fn_body(ast.Fn(s.name, s.params, s.body, span=s.span))
        return ir.ProxDecl(s.name, (names[0], names[1]), body, span=s.span)

    def override(self, s: ast.Const):
        text = str(self.overrides[s.name])
        try:
            expr = parse(Source(f"const {s.name} = {text}", f"--set {s.name}")).stmts[0].value
        except GradlangError:
            raise TypeError_(f"--set {s.name}={text}: not a number or an array", None,
                             "write --set lam=0.3 or --set w=[1, 2]") from None
        return self.constant(expr)

    def constant(self, e):
        """Evaluate a constant expression (numbers, arrays, other consts and dims, built-ins)."""
        expr = self.resolve.expr(e)
        for r in refs(expr):
            if r.kind in ("data", "param", "let"):
                raise TypeError_(f"a const cannot depend on {r.kind} '{r.name}'", r.span,
                                 "consts are known before the program runs")
            if r.kind == "dim" and r.name in self.bound_by_data:
                raise TypeError_(f"a const cannot depend on '{r.name}', a size bound by the data", r.span,
                                 "consts are known before the program runs; use a let")
            if r.kind in ("const", "dim") and r.name not in (self.out.consts if r.kind == "const" else self.out.dims):
                first = self.out.spans.get(r.name)
                raise NameError_(f"{r.kind} '{r.name}' is used before it has a value", r.span,
                                 f"declare it above this line (it is declared at {first})" if first else None)
        ev = Evaluator(self.out, {}, {}, self.out.consts, self.out.dims)
        with jax.ensure_compile_time_eval():
            value = ev.eval(expr)
        if hasattr(value, "log_prob"):
            raise TypeError_("a const must be a number or an array, not a distribution", e.span, None)
        return value if isinstance(value, (int, float, bool)) else np.asarray(value)

    def shape(self, t: ast.Type, where: str) -> tuple:
        if t.dims is None:
            return ()
        shape = []
        for d in t.dims:
            if isinstance(d, ast.Name) and (d.id in self.bound_by_data
                                            or self.scope.kinds.get(d.id) not in ("dim", "const")):
                if d.id in self.scope.kinds and d.id not in self.bound_by_data:
                    raise TypeError_(f"'{d.id}' is a {self.scope.kinds[d.id]}, not a size", d.span, None)
                shape.append(d.id)  # a symbolic dim, bound by the data
                continue
            if self.data_bound_names(d):  # K - 1: computed when the data bind K
                shape.append(self.size_expr(d, where))
                continue
            value = self.constant(d)
            if np.ndim(value) != 0 or not np.isfinite(float(value)) or float(value) != int(value) or int(value) < 0:
                raise TypeError_(f"a dim of {where} must be a non-negative integer", d.span, None)
            shape.append(int(value))
        return tuple(shape)

    def data_bound_names(self, e) -> list[str]:
        """The sizes bound by the data that an AST expression names."""
        if isinstance(e, ast.Name):
            return [e.id] if e.id in self.bound_by_data else []
        found = []
        for f in fields(e) if is_dataclass(e) else ():
            value = getattr(e, f.name)
            for v in (value if isinstance(value, tuple) else (value,)):
                if isinstance(v, ast.Node):
                    found += self.data_bound_names(v)
        return found

    def size_expr(self, e, where: str):
        """A size written with sizes bound by the data: ``K - 1``, ``D + 1``, ``N // 2`` (+ - * / //
        of those, dims and consts), kept as an ``ir.SizeExpr`` computed when the data bind them."""
        if isinstance(e, ast.Name) and e.id in self.bound_by_data:
            return e.id
        if not self.data_bound_names(e):
            value = self.constant(e)
            if np.ndim(value) != 0 or isinstance(value, bool) or not np.isfinite(float(value)):
                raise TypeError_(f"a size of {where} must be computed from numbers", e.span,
                                 "combine sizes, dims and consts with + - * / //")
            return int(value) if float(value) == int(value) else float(value)
        if isinstance(e, ast.BinOp) and e.op in ("+", "-", "*", "/", "//"):
            return ir.SizeExpr(e.op, self.size_expr(e.left, where), self.size_expr(e.right, where), span=e.span)
        raise TypeError_(f"a size of {where} may combine sizes bound by the data, dims and consts with "
                         "+ - * / // only", e.span, "e.g. real[K - 1] or real[D + 1]")

    def data(self, s: ast.Data) -> ir.DataDecl:
        if s.type.base not in types.ELEMENT_TYPES or s.type.args or s.type.kwargs:
            hint = "data is real, int or bool" + ("; domains are for parameters" if s.type.base in types.DOMAINS else "")
            raise TypeError_(f"unknown element type '{s.type.base}' for data {s.name}", s.type.span, hint)
        source = None
        if s.default is not None:
            source = self.load_source(s)
        return ir.DataDecl(s.name, ir.TensorType(s.type.base, self.shape(s.type, f"data {s.name}")),
                           source, str(Path(self.source.name).parent) if self.source.name != "<string>" else "",
                           span=s.span)

    def load_source(self, s: ast.Data) -> tuple[str, str]:
        d = s.default
        ok = (isinstance(d, ast.Call) and isinstance(d.func, ast.Name) and d.func.id == "load"
              and 1 <= len(d.args) <= 2 and not d.kwargs and all(isinstance(a, ast.String) for a in d.args))
        if not ok:
            raise TypeError_(f"the default of data {s.name} must be load(\"file\", \"array\")", d.span,
                             f'write: data {s.name}: ... = load("data/file.npz", "{s.name}")')
        return (d.args[0].value, d.args[1].value if len(d.args) > 1 else s.name)

    def typed(self, t: ast.Type, where: str):
        """The domain and shape of a typed latent (``sigma: positive ~ ...``, ``z: real[N, L] ~ ...``);
        a discrete latent (``int``/``bool``) keeps its distribution's support."""
        if t.base in ("int", "bool") and not t.args and not t.kwargs:
            return None, self.shape(t, where)
        domain = types.domain_of(t, lambda a: self.constant(a), where)
        shape = self.shape(t, where)
        types.check_rank(domain, shape, t, where)
        return domain, shape

    def param(self, s: ast.Param) -> ir.ParamDecl:
        domain = types.domain_of(s.type, lambda a: self.constant(a), f"param {s.name}")
        shape = self.shape(s.type, f"param {s.name}")
        types.check_rank(domain, shape, s.type, f"param {s.name}")
        for d in shape:
            if isinstance(d, str) and d not in self.data_dims:
                raise TypeError_(f"size '{d}' of param {s.name} is not known", s.type.span,
                                 f"declare `dim {d} = ...`, or use {d} in the shape of a data declaration")
        init = None
        if s.init is not None:
            if isinstance(s.init, ast.Name) and s.init.id in ("zeros", "ones"):
                init = ir.Lit(0.0 if s.init.id == "zeros" else 1.0, span=s.init.span)
            else:
                init = self.resolve.expr(s.init)
                for r in refs(init):
                    if r.kind in ("param", "let"):
                        raise TypeError_(f"the initial value of {s.name} cannot depend on {r.kind} "
                                         f"'{r.name}'", r.span, None)
        return ir.ParamDecl(s.name, ir.TensorType("real", shape), domain, init, span=s.span)

    def check_lets(self) -> None:
        """Lets may be declared in any order; a cycle among them is an error."""
        state: dict[str, int] = {}

        def visit(name: str, path: list[str]):
            if state.get(name) == 2:
                return
            if state.get(name) == 1:
                cycle = path[path.index(name):] + [name]
                raise NameError_(f"let {name} depends on itself: {' -> '.join(cycle)}",
                                 name_span(self.out.spans[name], name),
                                 "a let cannot use its own value; compute it from other names")
            state[name] = 1
            try:
                for r in refs(self.out.lets[name], "let"):
                    visit(r.name, path + [name])
            finally:
                state[name] = 2

        for name in self.out.lets:
            self.attempt(visit, name, [])


def check(program: ast.Program, source: Source, overrides: dict | None = None) -> ir.Program:
    """Check ``program`` and return its IR; raises a ``GradlangError`` with every error found."""
    return Checker(program, source, overrides).run()
