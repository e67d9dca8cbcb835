"""The abstract syntax tree: frozen dataclasses whose ``span`` is left out of equality.

Trees compare equal when they mean the same program wherever its text stood, which is what the
parse -> unparse -> parse round trip and the pass tests compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from ..source import Span


@dataclass(frozen=True, kw_only=True)
class Node:
    span: Span | None = field(default=None, compare=False, repr=False)


# ---- expressions ---------------------------------------------------------------------------
@dataclass(frozen=True)
class Number(Node):
    value: float | int


@dataclass(frozen=True)
class String(Node):
    value: str


@dataclass(frozen=True)
class Name(Node):
    id: str


@dataclass(frozen=True)
class Array(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class Keyword(Node):
    name: str
    value: "Expr"


@dataclass(frozen=True)
class Call(Node):
    func: "Expr"
    args: tuple["Expr", ...] = ()
    kwargs: tuple[Keyword, ...] = ()


@dataclass(frozen=True)
class Slice(Node):
    start: "Expr | None"
    stop: "Expr | None"
    step: "Expr | None"


@dataclass(frozen=True)
class Index(Node):
    value: "Expr"
    subscripts: tuple["Expr | Slice", ...]


@dataclass(frozen=True)
class Member(Node):
    value: "Expr"
    name: str


@dataclass(frozen=True)
class BinOp(Node):
    """Arithmetic ``+ - * / @ ^``, comparisons ``== != < <= > >=`` and ``and``/``or``."""

    op: str
    left: "Expr"
    right: "Expr"


@dataclass(frozen=True)
class UnaryOp(Node):
    op: str  # "-" or "not"
    operand: "Expr"


@dataclass(frozen=True)
class Block(Node):
    stmts: tuple["Stmt", ...]
    value: "Expr"


@dataclass(frozen=True)
class Expect(Node):
    args: tuple["Expr", ...]
    kwargs: tuple[Keyword, ...]
    body: Block


Expr = Union[Number, String, Name, Array, Call, Index, Member, BinOp, UnaryOp, Expect]


# ---- declarations --------------------------------------------------------------------------
@dataclass(frozen=True)
class Type(Node):
    """``real[N, D]``, ``positive``, ``interval(0, 1)[K]``: a domain word, its arguments, a shape."""

    base: str
    args: tuple[Expr, ...] = ()
    kwargs: tuple[Keyword, ...] = ()
    dims: tuple[Expr, ...] | None = None


@dataclass(frozen=True)
class Use(Node):
    target: str
    is_path: bool


@dataclass(frozen=True)
class Dim(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Const(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Data(Node):
    name: str
    type: Type
    default: Expr | None


@dataclass(frozen=True)
class Param(Node):
    name: str
    type: Type
    init: Expr | None


@dataclass(frozen=True)
class Let(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class FnParam(Node):
    name: str
    default: Expr | None


@dataclass(frozen=True)
class Fn(Node):
    name: str
    params: tuple[FnParam, ...]
    body: Expr | Block


@dataclass(frozen=True)
class TypedParam(Node):
    name: str
    type: Type


@dataclass(frozen=True)
class Extern(Node):
    name: str
    params: tuple[TypedParam, ...]
    result: Type
    grad: Expr | None


@dataclass(frozen=True)
class Prox(Node):
    name: str
    params: tuple[FnParam, ...]
    body: Expr


@dataclass(frozen=True)
class Objective(Node):
    sense: str  # "minimize" | "maximize"
    value: Expr
    each: bool = False  # minimize each(v): every entry of the vector v its own objective


@dataclass(frozen=True)
class NamedExpr(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class ObjectiveSet(Node):
    sense: str
    items: tuple[NamedExpr, ...]


@dataclass(frozen=True)
class Saddle(Node):
    min_over: tuple[str, ...]
    max_over: tuple[str, ...]
    value: Expr


@dataclass(frozen=True)
class Report(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Constraint(Node):
    label: str | None
    value: Expr


@dataclass(frozen=True)
class SubjectTo(Node):
    constraints: tuple[Constraint, ...]


@dataclass(frozen=True)
class Field(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class Solve(Node):
    fields: tuple[Field, ...]


@dataclass(frozen=True)
class Lower(Node):
    name: str
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class Model(Node):
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class Guide(Node):
    body: tuple["Stmt", ...]


@dataclass(frozen=True)
class GuideFamily(Node):
    family: Expr
    via: Expr | None = None  # the whole guide's estimator: guide = mean_field via stl


@dataclass(frozen=True)
class Sample(Node):
    name: str
    type: Type | None
    dist: Expr
    via: Expr | None
    index: tuple | None = None  # y[5:] ~ ...: the subscripts of an observed slice or gather


@dataclass(frozen=True)
class Target(Node):
    value: Expr


Stmt = Union[Use, Dim, Const, Data, Param, Let, Fn, Extern, Prox, Objective, ObjectiveSet, Saddle,
             Report, SubjectTo, Solve, Lower, Model, Guide, GuideFamily, Sample, Target]


@dataclass(frozen=True)
class Program(Node):
    stmts: tuple[Stmt, ...]
