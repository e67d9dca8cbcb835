"""AST -> canonical source text.  ``parse(unparse(parse(t))) == parse(t)`` for every program."""

from __future__ import annotations

from . import ast

# Binding strength, loosest first, as in LANGUAGE.md ("Operators").
_BINARY = {"or": 1, "and": 2, "==": 4, "!=": 4, "<": 4, "<=": 4, ">": 4, ">=": 4,
           "+": 5, "-": 5, "*": 6, "/": 6, "//": 6, "@": 6, "^": 8}
_POSTFIX = 9


def _number(v) -> str:
    if isinstance(v, int):
        return str(v)
    text = repr(float(v))
    return text if any(c in text for c in ".e") else text + ".0"


def _string(v: str) -> str:
    return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'


def _args(args, kwargs, indent: str) -> str:
    parts = [expr(a, 0, indent) for a in args]
    parts += [f"{k.name} = {expr(k.value, 0, indent)}" for k in kwargs]
    return ", ".join(parts)


def _prec(e) -> int:
    if isinstance(e, ast.BinOp):
        return _BINARY[e.op]
    if isinstance(e, ast.UnaryOp):
        return 3 if e.op == "not" else 7
    return 10


def expr(e, min_prec: int = 0, indent: str = "") -> str:
    text = _expr(e, indent)
    return f"({text})" if _prec(e) < min_prec else text


def _expr(e, indent: str) -> str:
    if isinstance(e, ast.Number):
        return _number(e.value)
    if isinstance(e, ast.String):
        return _string(e.value)
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.Array):
        return "[" + ", ".join(expr(i, 0, indent) for i in e.items) + "]"
    if isinstance(e, ast.Call):
        return f"{expr(e.func, _POSTFIX, indent)}({_args(e.args, e.kwargs, indent)})"
    if isinstance(e, ast.Index):
        return f"{expr(e.value, _POSTFIX, indent)}[" + ", ".join(_subscript(s, indent) for s in e.subscripts) + "]"
    if isinstance(e, ast.Member):
        return f"{expr(e.value, _POSTFIX, indent)}.{e.name}"
    if isinstance(e, ast.UnaryOp):
        if e.op == "not":
            return "not " + expr(e.operand, 3, indent)
        return "-" + expr(e.operand, 7, indent)
    if isinstance(e, ast.BinOp):
        p = _BINARY[e.op]
        if e.op == "^":
            left, right = _POSTFIX, 7
        elif p == 4:
            left, right = 5, 5
        else:
            left, right = p, p + 1
        op = "^" if e.op == "^" else f" {e.op} "
        return f"{expr(e.left, left, indent)}{op}{expr(e.right, right, indent)}"
    if isinstance(e, ast.Expect):
        head = "expect" + (f"({_args(e.args, e.kwargs, indent)})" if e.args or e.kwargs else "")
        return head + " " + _block(e.body, indent)
    raise TypeError(f"cannot unparse {type(e).__name__}")


def _subscript(s, indent: str) -> str:
    if isinstance(s, ast.Slice):
        part = lambda x: "" if x is None else expr(x, 0, indent)  # noqa: E731
        text = f"{part(s.start)}:{part(s.stop)}"
        return text + (f":{part(s.step)}" if s.step is not None else "")
    return expr(s, 0, indent)


def _block(b: ast.Block, indent: str) -> str:
    inner = indent + "  "
    lines = [inner + stmt(s, inner) for s in b.stmts] + [inner + expr(b.value, 0, inner)]
    return "{\n" + "\n".join(lines) + "\n" + indent + "}"


def _body(stmts, indent: str) -> str:
    inner = indent + "  "
    return "{\n" + "".join(inner + stmt(s, inner) + "\n" for s in stmts) + indent + "}"


def type_(t: ast.Type) -> str:
    text = t.base
    if t.args or t.kwargs:
        text += f"({_args(t.args, t.kwargs, '')})"
    if t.dims is not None:
        text += "[" + ", ".join(expr(d) for d in t.dims) + "]"
    return text


def _params(params, indent: str) -> str:
    return ", ".join(p.name + (f" = {expr(p.default, 0, indent)}" if p.default is not None else "")
                     for p in params)


def stmt(s, indent: str = "") -> str:
    e = lambda x: expr(x, 0, indent)  # noqa: E731
    if isinstance(s, ast.Use):
        return "use " + (_string(s.target) if s.is_path else s.target)
    if isinstance(s, ast.Dim):
        return f"dim {s.name} = {e(s.value)}"
    if isinstance(s, ast.Const):
        return f"const {s.name} = {e(s.value)}"
    if isinstance(s, (ast.Data, ast.Param)):
        word = "data" if isinstance(s, ast.Data) else "param"
        value = s.default if isinstance(s, ast.Data) else s.init
        return f"{word} {s.name}: {type_(s.type)}" + (f" = {e(value)}" if value is not None else "")
    if isinstance(s, ast.Let):
        return f"let {s.name} = {e(s.value)}"
    if isinstance(s, ast.Fn):
        head = f"fn {s.name}({_params(s.params, indent)})"
        if isinstance(s.body, ast.Block):
            return head + " " + _block(s.body, indent)
        return f"{head} = {e(s.body)}"
    if isinstance(s, ast.Extern):
        params = ", ".join(f"{p.name}: {type_(p.type)}" for p in s.params)
        text = f"extern fn {s.name}({params}) -> {type_(s.result)}"
        return text + (f" grad {e(s.grad)}" if s.grad is not None else "")
    if isinstance(s, ast.Prox):
        return f"prox {s.name}({_params(s.params, indent)}) = {e(s.body)}"
    if isinstance(s, ast.Objective):
        return f"{s.sense} each({e(s.value)})" if s.each else f"{s.sense} {e(s.value)}"
    if isinstance(s, ast.ObjectiveSet):
        inner = indent + "  "
        items = "".join(f"{inner}{i.name}: {expr(i.value, 0, inner)}\n" for i in s.items)
        return f"{s.sense} {{\n{items}{indent}}}"
    if isinstance(s, ast.Saddle):
        return f"minimize over {', '.join(s.min_over)} maximize over {', '.join(s.max_over)} {e(s.value)}"
    if isinstance(s, ast.Report):
        return f"report {s.name} = {e(s.value)}"
    if isinstance(s, ast.SubjectTo):
        inner = indent + "  "
        lines = "".join(inner + (f"{c.label}: " if c.label else "") + expr(c.value, 0, inner) + "\n"
                        for c in s.constraints)
        return f"subject to {{\n{lines}{indent}}}"
    if isinstance(s, ast.Solve):
        inner = indent + "  "
        lines = "".join(f"{inner}{f.name} = {expr(f.value, 0, inner)}\n" for f in s.fields)
        return f"solve {{\n{lines}{indent}}}"
    if isinstance(s, ast.Lower):
        return f"lower {s.name} " + _body(s.body, indent)
    if isinstance(s, ast.Model):
        return "model " + _body(s.body, indent)
    if isinstance(s, ast.Guide):
        return "guide " + _body(s.body, indent)
    if isinstance(s, ast.GuideFamily):
        return f"guide = {e(s.family)}" + (f" via {e(s.via)}" if s.via is not None else "")
    if isinstance(s, ast.Sample):
        left = e(ast.Index(ast.Name(s.name), s.index)) if s.index is not None else s.name
        text = left + (f": {type_(s.type)}" if s.type else "") + f" ~ {e(s.dist)}"
        return text + (f" via {e(s.via)}" if s.via is not None else "")
    if isinstance(s, ast.Target):
        return f"target += {e(s.value)}"
    raise TypeError(f"cannot unparse {type(s).__name__}")


def unparse(program: ast.Program) -> str:
    """Canonical text of a program: one statement a line, two-space indentation."""
    return "".join(stmt(s) + "\n" for s in program.stmts)
