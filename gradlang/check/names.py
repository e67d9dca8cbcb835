"""Name resolution: AST expressions -> IR, in the scope of a program's declarations.

Order of lookup: locals (function parameters, block lets), then the program's declarations, then
built-in constants, functions and distributions.  An unknown name suggests the nearest known one.
"""

from __future__ import annotations

from ..errors import NameError_, TypeError_, UnsupportedError, did_you_mean
from ..ir import nodes as ir
from ..lib.builtins import CONSTANTS, FUNCTIONS, OPERATORS, UNARY
from ..lib.distributions import DISTRIBUTIONS
from ..source import Span
from ..syntax import ast


def keyword_span(span: Span | None, word: str) -> Span | None:
    """The span of the first word of a statement (for messages about whole blocks)."""
    if span is None:
        return None
    return Span(span.line, span.col, span.line, span.col + len(word), span.source)


def name_span(span: Span | None, name: str) -> Span | None:
    """The span of ``name`` where it first appears inside a statement's first line."""
    if span is None or span.source is None:
        return span
    line = span.source.line(span.line)
    at = line.find(name, span.col - 1)
    if at < 0:
        return keyword_span(span, "")
    return Span(span.line, at + 1, span.line, at + 1 + len(name), span.source)


def unsupported(what: str, span: Span | None, hint: str | None = None) -> UnsupportedError:
    return UnsupportedError(f"{what} not supported yet", span,
                            hint or "this version of gradlang parses it but cannot run it yet")


class Scope:
    """The program's global names, by kind: dim, const, data, param, let, fn."""

    def __init__(self):
        self.kinds: dict[str, str] = {}
        self.fns: dict[str, ast.Fn] = {}

    def visible(self) -> list[str]:
        return list(self.kinds)


class Resolver:
    def __init__(self, scope: Scope):
        self.scope = scope

    # ---- entry points -------------------------------------------------------------------------
    def expr(self, e, local: frozenset = frozenset()) -> ir.Expr:
        return self._expr(e, local)

    def fn_body(self, fn: ast.Fn) -> ir.Expr:
        local = frozenset(p.name for p in fn.params)
        if isinstance(fn.body, ast.Block):
            return self.block(fn.body, local)
        return self._expr(fn.body, local)

    def block(self, b: ast.Block, local: frozenset) -> ir.Block:
        bindings = []
        for s in b.stmts:
            if not isinstance(s, ast.Let):
                word = "sample statements" if isinstance(s, ast.Sample) else "'target +='"
                raise unsupported(f"{word} in a function body are", s.span,
                                  "sample statements belong in a model, a guide or an expect block")
            bindings.append((s.name, self._expr(s.value, local)))
            local = local | {s.name}
        return ir.Block(tuple(bindings), self._expr(b.value, local), span=b.span)

    # ---- expressions --------------------------------------------------------------------------
    def _expr(self, e, local: frozenset) -> ir.Expr:
        if isinstance(e, ast.Number):
            if isinstance(e.value, int) and e.value >= 2**31:
                raise TypeError_(f"the integer {e.value} does not fit in 32 bits", e.span,
                                 f"write it as a real number: {float(e.value):g}")
            return ir.Lit(e.value, span=e.span)
        if isinstance(e, ast.String):
            raise TypeError_("a string is not a value here", e.span,
                             "strings appear only in load(\"file\", \"name\") and use \"file\"")
        if isinstance(e, ast.Name):
            return self._name(e, local)
        if isinstance(e, ast.Array):
            if not e.items:
                raise TypeError_("an empty array has no element type or shape", e.span,
                                 "use zeros(0) for an empty vector")
            return ir.ArrayLit(tuple(self._expr(i, local) for i in e.items), span=e.span)
        if isinstance(e, ast.BinOp):
            return ir.Prim(OPERATORS[e.op], (self._expr(e.left, local), self._expr(e.right, local)),
                           span=e.span)
        if isinstance(e, ast.UnaryOp):
            if e.op == "-" and isinstance(e.operand, ast.Number):
                return ir.Lit(-e.operand.value, span=e.span)
            return ir.Prim(UNARY[e.op], (self._expr(e.operand, local),), span=e.span)
        if isinstance(e, ast.Call):
            return self._call(e, local)
        if isinstance(e, ast.Index):
            items = []
            for s in e.subscripts:
                if isinstance(s, ast.Slice):
                    bound = lambda x: None if x is None else self._expr(x, local)  # noqa: E731
                    items.append(ir.SliceIR(bound(s.start), bound(s.stop), bound(s.step), span=s.span))
                elif isinstance(s, ast.Name) and s.id == "None" and s.id not in local:
                    items.append(ir.Lit(None, span=s.span))
                else:
                    items.append(self._expr(s, local))
            return ir.Index(self._expr(e.value, local), tuple(items), span=e.span)
        if isinstance(e, ast.Member):
            raise unsupported("lower-level solutions (bilevel problems) are", e.span,
                              f"'{e.name}' of a lower block needs bilevel support, which comes later")
        if isinstance(e, ast.Expect):
            raise unsupported("expect (Monte-Carlo objectives) is", keyword_span(e.span, "expect"),
                              "probabilistic programs arrive with model/guide support")
        raise TypeError_(f"unexpected {type(e).__name__}", getattr(e, "span", None))

    def _name(self, e: ast.Name, local: frozenset) -> ir.Expr:
        if e.id in local:
            return ir.Ref("local", e.id, span=e.span)
        kind = self.scope.kinds.get(e.id)
        if kind == "fn" or (kind is None and (e.id in FUNCTIONS or e.id in DISTRIBUTIONS)):
            raise TypeError_(f"'{e.id}' is a function, not a value", e.span, f"call it: {e.id}(...)")
        if kind == "latent":
            raise unsupported("names declared in model and guide blocks are", e.span,
                              "probabilistic models arrive in a later version")
        if kind is not None:
            return ir.Ref(kind, e.id, span=e.span)
        if e.id == "None":
            raise TypeError_("None is not a value", e.span, "it adds an axis inside indexing only: x[:, None]")
        if e.id in CONSTANTS:
            return ir.Lit(CONSTANTS[e.id], span=e.span)
        hint = did_you_mean(e.id, list(local) + self.scope.visible() + list(CONSTANTS))
        raise NameError_(f"unknown name '{e.id}'", e.span, hint or "declare it first (data, param, const, let)")

    def _call(self, e: ast.Call, local: frozenset) -> ir.Expr:
        if not isinstance(e.func, ast.Name):
            raise TypeError_("only named functions can be called", e.func.span, None)
        name = e.func.id
        args = tuple(self._expr(a, local) for a in e.args)
        kwargs = tuple((k.name, self._expr(k.value, local)) for k in e.kwargs)
        if name in local:
            raise TypeError_(f"'{name}' is a value, not a function", e.func.span, None)
        if name in self.scope.fns:
            return self._user_call(self.scope.fns[name], e, args, kwargs, local)
        if name in self.scope.kinds:
            raise TypeError_(f"'{name}' is a {self.scope.kinds[name]}, not a function", e.func.span,
                             f"index it with {name}[...]" if self.scope.kinds[name] != "dim" else None)
        if name in FUNCTIONS:
            return ir.Prim(name, args, kwargs, span=e.span)
        if name in DISTRIBUTIONS:
            return ir.Dist(name, args, kwargs, span=e.span)
        if name == "load":
            raise TypeError_("load(...) gives the default of a data declaration only", e.span,
                             'write: data y: real[N] = load("file.npz", "y")')
        known = list(self.scope.fns) + list(FUNCTIONS) + list(DISTRIBUTIONS)
        hint = did_you_mean(name, known)
        raise NameError_(f"unknown function '{name}'", e.func.span,
                         hint or "define it with fn, or see `gradlang list builtins`")

    def _user_call(self, fn: ast.Fn, e: ast.Call, args, kwargs, local) -> ir.Expr:
        params = [p.name for p in fn.params]
        if len(args) > len(params):
            raise TypeError_(f"{fn.name}() takes {len(params)} argument{'s' if len(params) != 1 else ''}, "
                             f"not {len(args) + len(kwargs)}", e.span, f"defined as {fn.name}({', '.join(params)})")
        bound = dict(zip(params, args))
        for (k, v), kw in zip(kwargs, e.kwargs):
            if k not in params:
                raise TypeError_(f"{fn.name}() has no argument '{k}'", kw.span,
                                 did_you_mean(k, params) or f"its arguments: {', '.join(params)}")
            if k in bound:
                raise TypeError_(f"argument '{k}' of {fn.name}() given twice", kw.span, None)
            bound[k] = v
        full = []
        for p in fn.params:
            if p.name in bound:
                full.append(bound[p.name])
            elif p.default is not None:
                full.append(self._expr(p.default, frozenset()))
            else:
                raise TypeError_(f"{fn.name}() is missing argument '{p.name}'", e.span,
                                 f"defined as {fn.name}({', '.join(params)})")
        return ir.CallFn(fn.name, tuple(full), span=e.span)
