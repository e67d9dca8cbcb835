"""IR nodes.  Names are resolved (every ``Ref`` says what it refers to), user functions are explicit
calls, every node keeps the span of the source it came from.  Element types and shapes are inferred
by abstract evaluation (``check.shapes``) and shown by the printer.  The plan's nodes, the
decisions the passes write, are in ``plan.py``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Union

import numpy as np

from ..source import Span


@dataclass(frozen=True, kw_only=True)
class Node:
    span: Span | None = field(default=None, compare=False, repr=False)


@dataclass(frozen=True)
class Lit(Node):
    """A literal number (kept a Python scalar so JAX treats it as weakly typed)."""

    value: Any


@dataclass(frozen=True)
class Ref(Node):
    """A reference: kind is data | param | const | dim | let | local | builtin."""

    kind: str
    name: str


@dataclass(frozen=True)
class Prim(Node):
    """A built-in operation: an operator (add, matmul, ...) or a NumPy-named function."""

    op: str
    args: tuple["Expr", ...] = ()
    kwargs: tuple[tuple[str, "Expr"], ...] = ()


@dataclass(frozen=True)
class ArrayLit(Node):
    items: tuple["Expr", ...]


@dataclass(frozen=True)
class SliceIR(Node):
    start: "Expr | None"
    stop: "Expr | None"
    step: "Expr | None"


@dataclass(frozen=True)
class Index(Node):
    value: "Expr"
    items: tuple["Expr | SliceIR", ...]


@dataclass(frozen=True)
class CallFn(Node):
    """A call of a user function; arguments complete (defaults filled in by the checker)."""

    name: str
    args: tuple["Expr", ...]


@dataclass(frozen=True)
class Block(Node):
    """Local bindings evaluated in order, then the value: ``let a = ...; a + 1``.  ``origin``: the
    user function this block was inlined from (a pass may recognise it, e.g. a declared prox)."""

    bindings: tuple[tuple[str, "Expr"], ...]
    value: "Expr"
    origin: str | None = None


@dataclass(frozen=True)
class Dist(Node):
    """A distribution value (NumPyro's, by snake_case name); used by ``log_prob`` and param inits."""

    name: str
    args: tuple["Expr", ...] = ()
    kwargs: tuple[tuple[str, "Expr"], ...] = ()


Expr = Union[Lit, Ref, Prim, ArrayLit, Index, CallFn, Block, Dist]


# ---- declarations ------------------------------------------------------------------------------
@dataclass(frozen=True)
class SizeExpr:
    """A size computed from sizes bound by the data when they are bound: ``K - 1``, ``D + 1``,
    ``2 * N``, ``N // 2``.  ``op`` is + - * / //; an operand is an int, a symbolic name or another
    SizeExpr (consts and fixed dims are folded into ints by the checker).  Its value must be a
    non-negative integer once the data bind the names (checked with the data)."""

    op: str
    left: "int | str | SizeExpr"
    right: "int | str | SizeExpr"
    span: Span | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        def side(x, right: bool) -> str:
            loose = isinstance(x, SizeExpr) and (x.op in "+-" and self.op not in "+-" or right and self.op != "+")
            return f"({x})" if loose else str(x)
        return f"{side(self.left, False)} {self.op} {side(self.right, True)}"

    def names(self) -> list[str]:
        out = []
        for x in (self.left, self.right):
            for n in (x.names() if isinstance(x, SizeExpr) else [x] if isinstance(x, str) else []):
                if n not in out:
                    out.append(n)
        return out

    def value(self, dims: dict) -> int | float:
        """The size at ``dims`` (a float when ``/`` leaves a fraction; the caller checks)."""
        a, b = size_of(self.left, dims), size_of(self.right, dims)
        if self.op == "+":
            return a + b
        if self.op == "-":
            return a - b
        if self.op == "*":
            return a * b
        if b == 0:
            return float("nan")
        if self.op == "//":
            return a // b
        q = a / b
        return int(q) if float(q).is_integer() else q


def size_of(d, dims: dict):
    """A dim's size at ``dims``: an int as is, a name looked up, a SizeExpr computed."""
    if isinstance(d, SizeExpr):
        return d.value(dims)
    if isinstance(d, str):
        return dims[d]
    return d


def size_names(shape) -> list[str]:
    """The symbolic names a shape depends on, its size expressions' included."""
    out: list[str] = []
    for d in shape or ():
        for n in (d.names() if isinstance(d, SizeExpr) else [d] if isinstance(d, str) else []):
            if n not in out:
                out.append(n)
    return out


@dataclass(frozen=True)
class TensorType:
    """Element type and shape; a dim is an int, a symbolic name, a SizeExpr, or None (unknown)."""

    elem: str
    shape: tuple[int | str | None, ...] = ()

    def __str__(self) -> str:
        if not self.shape:
            return self.elem
        return f"{self.elem}[{', '.join('?' if d is None else str(d) for d in self.shape)}]"


@dataclass(frozen=True)
class Domain:
    """A parameter's domain word and its arguments (``interval(0, 1)`` -> ("interval", (0, 1)))."""

    name: str
    args: tuple[float, ...] = ()

    def __str__(self) -> str:
        return self.name + (f"({', '.join(map(str, self.args))})" if self.args else "")


@dataclass(frozen=True)
class DataDecl(Node):
    name: str
    type: TensorType
    source: tuple[str, str] | None  # (path relative to the .grad file's folder, array name)
    base_dir: str = ""


@dataclass(frozen=True)
class ParamDecl(Node):
    name: str
    type: TensorType
    domain: Domain
    init: Expr | None  # a constant expression, a bare zeros/ones, or a Dist to sample from


@dataclass(frozen=True)
class FnDecl(Node):
    name: str
    params: tuple[str, ...]
    body: Expr


@dataclass(frozen=True)
class ProxDecl(Node):
    """``prox f(v, t) = body``: the user's proximal operator of the function ``f``."""

    name: str
    params: tuple[str, str]
    body: Expr


@dataclass(frozen=True)
class ObjectiveIR(Node):
    """One objective.  ``sense`` is what the user wrote; the loss is ``value`` or ``-value``."""

    name: str
    sense: str
    value: Expr
    each: bool = False  # minimize each(v): the entries of the vector v are the objectives


@dataclass(frozen=True)
class ConfigValue(Node):
    """A ``solve`` field value: a number, a string, a word, or a call of a choice word."""

    kind: str  # number | string | word | call | array
    value: Any = None
    args: tuple["ConfigValue", ...] = ()
    kwargs: tuple[tuple[str, "ConfigValue"], ...] = ()
    name_spans: tuple = field(default=(), compare=False, repr=False)  # where each keyword is written


@dataclass
class Program:
    """A checked program: every declaration by kind, in source order."""

    source: Any
    dims: dict[str, int | None] = field(default_factory=dict)
    consts: dict[str, np.ndarray | float | int] = field(default_factory=dict)
    data: dict[str, DataDecl] = field(default_factory=dict)
    params: dict[str, ParamDecl] = field(default_factory=dict)
    lets: dict[str, Expr] = field(default_factory=dict)
    fns: dict[str, FnDecl] = field(default_factory=dict)
    objectives: list[ObjectiveIR] = field(default_factory=list)
    reports: dict[str, Expr] = field(default_factory=dict)
    solve: dict[str, ConfigValue] = field(default_factory=dict)
    spans: dict[str, Span] = field(default_factory=dict)  # declaration spans by name
    model: Any = None  # ModelIR
    guide: Any = None  # GuideIR
    proxes: dict[str, ProxDecl] = field(default_factory=dict)  # user prox declarations by function
    split: Any = None  # ProxSplit: smooth part + prox terms (split_prox)
    constraints: list = field(default_factory=list)  # ConstraintIR of `subject to`, in order
    constrained: Any = None  # ConstraintsPlan (constraints_to_method)
    aggregate: Any = None  # Aggregate of several objectives (objectives_to_aggregate)
    lowers: dict = field(default_factory=dict)  # LowerIR by block name (bilevel programs)
    optimizer: Any = None  # OptimizerSpec (choose_optimizer)
    vi_defaults: Any = None  # VIDefaults: settings chosen for a VI fit that wrote none (choose_vi_defaults)

    def replace(self, **changes) -> "Program":
        new = Program(**{k: getattr(self, k) for k in self.__dataclass_fields__})
        for k, v in changes.items():
            setattr(new, k, v)
        return new


# ---- probabilistic programs ---------------------------------------------------------------------
@dataclass(frozen=True)
class Sample(Node):
    """``name ~ dist via estimator``.  ``observed``: the left side is data (or a let of data);
    ``domain``/``shape``: a typed latent's declared domain and shape; ``family``: a per-site
    guide family word (``mean_field``) instead of a distribution."""

    name: str
    dist: Expr | None
    via: ConfigValue | None = None
    observed: bool = False
    domain: Domain | None = None
    shape: tuple | None = None
    family: ConfigValue | None = None
    chosen: bool = False  # ``via`` was chosen by the pass choose_estimators (the user wrote none)
    obs: Expr | None = None  # an observed slice or gather of data (``y[5:] ~ ...``): the value observed
    label: str | None = None  # an observed site's name in NumPyro's trace ("y[5:]"), unique in the model


@dataclass(frozen=True)
class Factor(Node):
    """``target += expr``: an extra log-density term."""

    value: Expr


@dataclass(frozen=True)
class LetStmt(Node):
    name: str
    value: Expr


@dataclass(frozen=True)
class DrawGuide(Node):
    """``z ~ guide`` inside expect: one joint draw of every latent of the guide."""

    name: str


@dataclass(frozen=True)
class LogDensity(Node):
    """``logp(model, z)`` / ``logq(guide, z)``: a block's log density at the draw ``z``."""

    block: str  # model | guide
    draw: str


@dataclass(frozen=True)
class Expect(Node):
    """A Monte-Carlo estimate over ``particles`` runs of ``stmts``, each giving ``value``:
    differentiated with the estimator each sample statement names (a surrogate for the
    score-function ones).  ``reduce`` combines the particles' values f_k: ``mean`` (expect and
    elbo) or ``renyi``, 1/(1-alpha) log mean_k exp((1-alpha) f_k) (iwae is alpha = 0)."""

    particles: int
    stmts: tuple
    value: Expr
    reduce: str = "mean"  # mean | renyi
    alpha: float = 0.0


@dataclass(frozen=True)
class VIObjective(Node):
    """``elbo(particles)``, ``iwae(particles)``, ``renyi(alpha, particles)`` as written; the pass
    lower_vi_objectives turns each into its ``Expect`` form."""

    kind: str
    particles: int
    alpha: float = 0.0


@dataclass
class ModelIR:
    stmts: tuple  # Sample | Factor | LetStmt, in order
    span: Any = None


@dataclass
class GuideIR:
    stmts: tuple = ()  # Sample | LetStmt
    family: ConfigValue | None = None  # a whole-guide family
    span: Any = None
    via: ConfigValue | None = None  # a whole-guide family's estimator (choose_estimators writes it)
