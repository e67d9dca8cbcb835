"""Lark parse tree -> ``ast`` nodes, with a ``Span`` on every node."""

from __future__ import annotations

from lark import Token, Transformer, v_args

from ..source import Source, Span
from . import ast


def _unquote(text: str) -> str:
    body = text[1:-1]
    out, i = [], 0
    escapes = {"n": "\n", "t": "\t", '"': '"', "\\": "\\"}
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body):
            out.append(escapes.get(body[i + 1], body[i + 1]))
            i += 2
        else:
            out.append(ch)
            i += 1
    return "".join(out)


def _number(text: str) -> int | float:
    if any(c in text for c in ".eE"):
        return float(text)
    return int(text)


def _split_args(args) -> tuple[tuple, tuple]:
    args = args or []
    pos = tuple(a for a in args if not isinstance(a, ast.Keyword))
    kw = tuple(a for a in args if isinstance(a, ast.Keyword))
    return pos, kw


@v_args(meta=True)
class BuildAst(Transformer):
    def __init__(self, source: Source):
        super().__init__()
        self.source = source

    def _span(self, meta) -> Span | None:
        if getattr(meta, "empty", True):
            return None
        return Span(meta.line, meta.column, meta.end_line, meta.end_column, self.source)

    def _tspan(self, tok: Token) -> Span:
        return Span(tok.line, tok.column, tok.end_line, tok.end_column, self.source)

    # ---- program and statements -----------------------------------------------------------
    def start(self, meta, c):
        return ast.Program(tuple(c), span=self._span(meta))

    def use(self, meta, c):
        tok = c[0]
        if tok.type == "STRING":
            return ast.Use(_unquote(tok), True, span=self._span(meta))
        return ast.Use(str(tok), False, span=self._span(meta))

    def dim(self, meta, c):
        return ast.Dim(str(c[0]), c[1], span=self._span(meta))

    def const(self, meta, c):
        return ast.Const(str(c[0]), c[1], span=self._span(meta))

    def data(self, meta, c):
        return ast.Data(str(c[0]), c[1], c[2] if len(c) > 2 else None, span=self._span(meta))

    def param(self, meta, c):
        return ast.Param(str(c[0]), c[1], c[2] if len(c) > 2 else None, span=self._span(meta))

    def let(self, meta, c):
        return ast.Let(str(c[0]), c[1], span=self._span(meta))

    def fn_def(self, meta, c):
        return ast.Fn(str(c[0]), tuple(c[1] or ()), c[2], span=self._span(meta))

    def fn_params(self, meta, c):
        return list(c)

    def fn_param(self, meta, c):
        return ast.FnParam(str(c[0]), c[1] if len(c) > 1 else None, span=self._span(meta))

    def block(self, meta, c):
        return ast.Block(tuple(c[:-1]), c[-1], span=self._span(meta))

    def extern_fn(self, meta, c):
        grad = c[3] if len(c) > 3 else None
        return ast.Extern(str(c[0]), tuple(c[1] or ()), c[2], grad, span=self._span(meta))

    def typed_params(self, meta, c):
        return list(c)

    def typed_param(self, meta, c):
        return ast.TypedParam(str(c[0]), c[1], span=self._span(meta))

    def prox_def(self, meta, c):
        return ast.Prox(str(c[0]), tuple(c[1] or ()), c[2], span=self._span(meta))

    def type(self, meta, c):
        args, kwargs, dims = (), (), None
        for part in c[1:]:
            if part[0] == "args":
                args, kwargs = _split_args(part[1])
            else:
                dims = tuple(part[1] or ())
        return ast.Type(str(c[0]), args, kwargs, dims, span=self._span(meta))

    def type_args(self, meta, c):
        return ("args", c[0])

    def type_dims(self, meta, c):
        return ("dims", c[0])

    def dims(self, meta, c):
        return list(c)

    def objective(self, meta, c):
        return c[0]

    def minimize(self, meta, c):
        return ast.Objective("minimize", c[0], span=self._span(meta))

    def maximize(self, meta, c):
        return ast.Objective("maximize", c[0], span=self._span(meta))

    def minimize_each(self, meta, c):
        return ast.Objective("minimize", c[0], each=True, span=self._span(meta))

    def maximize_each(self, meta, c):
        return ast.Objective("maximize", c[0], each=True, span=self._span(meta))

    def minimize_set(self, meta, c):
        return ast.ObjectiveSet("minimize", tuple(c), span=self._span(meta))

    def maximize_set(self, meta, c):
        return ast.ObjectiveSet("maximize", tuple(c), span=self._span(meta))

    def named_expr(self, meta, c):
        return ast.NamedExpr(str(c[0]), c[1], span=self._span(meta))

    def saddle(self, meta, c):
        return ast.Saddle(tuple(c[0]), tuple(c[1]), c[2], span=self._span(meta))

    def names(self, meta, c):
        return [str(t) for t in c]

    def report(self, meta, c):
        return ast.Report(str(c[0]), c[1], span=self._span(meta))

    def subject_to(self, meta, c):
        return ast.SubjectTo(tuple(c), span=self._span(meta))

    def constraint(self, meta, c):
        if len(c) == 2:
            return ast.Constraint(str(c[0]), c[1], span=self._span(meta))
        return ast.Constraint(None, c[0], span=self._span(meta))

    def solve(self, meta, c):
        return ast.Solve(tuple(c), span=self._span(meta))

    def field(self, meta, c):
        return ast.Field(str(c[0]), c[1], span=self._span(meta))

    def lower(self, meta, c):
        return ast.Lower(str(c[0]), tuple(c[1:]), span=self._span(meta))

    def model(self, meta, c):
        return ast.Model(tuple(c), span=self._span(meta))

    def guide(self, meta, c):
        return ast.Guide(tuple(c), span=self._span(meta))

    def guide_family(self, meta, c):
        return ast.GuideFamily(c[0], c[1] if len(c) > 1 else None, span=self._span(meta))

    def sample(self, meta, c):
        name, rest = str(c[0]), list(c[1:])
        typ = rest.pop(0) if isinstance(rest[0], ast.Type) else None
        dist = rest[0]
        via = rest[1] if len(rest) > 1 else None
        return ast.Sample(name, typ, dist, via, span=self._span(meta))

    def indexed_sample(self, meta, c):
        name, index, dist = str(c[0]), tuple(c[1]), c[2]
        via = c[3] if len(c) > 3 else None
        return ast.Sample(name, None, dist, via, index, span=self._span(meta))

    def target(self, meta, c):
        return ast.Target(c[0], span=self._span(meta))

    # ---- expressions ------------------------------------------------------------------------
    def or_(self, meta, c):
        return ast.BinOp("or", c[0], c[1], span=self._span(meta))

    def and_(self, meta, c):
        return ast.BinOp("and", c[0], c[1], span=self._span(meta))

    def not_(self, meta, c):
        return ast.UnaryOp("not", c[0], span=self._span(meta))

    def compare(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], span=self._span(meta))

    def binop(self, meta, c):
        return ast.BinOp(str(c[1]), c[0], c[2], span=self._span(meta))

    def neg(self, meta, c):
        return ast.UnaryOp("-", c[0], span=self._span(meta))

    def pow(self, meta, c):
        return ast.BinOp("^", c[0], c[1], span=self._span(meta))

    def call(self, meta, c):
        pos, kw = _split_args(c[1])
        return ast.Call(c[0], pos, kw, span=self._span(meta))

    def index(self, meta, c):
        return ast.Index(c[0], tuple(c[1]), span=self._span(meta))

    def member(self, meta, c):
        return ast.Member(c[0], str(c[1]), span=self._span(meta))

    def number(self, meta, c):
        return ast.Number(_number(str(c[0])), span=self._span(meta))

    def string(self, meta, c):
        return ast.String(_unquote(str(c[0])), span=self._span(meta))

    def name(self, meta, c):
        return ast.Name(str(c[0]), span=self._span(meta))

    def array(self, meta, c):
        return ast.Array(tuple(c[0] or ()), span=self._span(meta))

    def expect(self, meta, c):
        args = c[0] if len(c) == 2 else None
        pos, kw = _split_args(args)
        return ast.Expect(pos, kw, c[-1], span=self._span(meta))

    def elements(self, meta, c):
        return list(c)

    def args(self, meta, c):
        return list(c)

    def kwarg(self, meta, c):
        return ast.Keyword(str(c[0]), c[1], span=self._span(meta))

    def subscripts(self, meta, c):
        return list(c)

    def slice(self, meta, c):
        c = list(c) + [None] * (3 - len(c))
        return ast.Slice(c[0], c[1], c[2], span=self._span(meta))
