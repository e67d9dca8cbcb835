"""Name resolution: AST expressions -> IR, in the scope of a program's declarations.

Order of lookup: locals (function parameters, block lets), then the program's declarations, then
built-in constants, functions and distributions.  An unknown name suggests the nearest known one.
"""

from __future__ import annotations

from ..errors import NameError_, TypeError_, did_you_mean
from ..ir import nodes as ir
from ..lib.builtins import CONSTANTS, FUNCTIONS, OPERATORS, UNARY
from ..lib.distributions import DISTRIBUTIONS
from ..syntax import ast
from .config_value import config_value
from .spans import keyword_span, name_span, unsupported  # noqa: F401 - re-exported


VI_OBJECTIVES = ("elbo", "iwae", "renyi")
FAMILY_WORDS = ("mean_field", "low_rank", "full_rank", "delta", "flow")
NOT_A_DISTRIBUTION = "e.g. normal(0, 1), bernoulli(logits = z), mixture(w, [d1, d2]); `gradlang list distributions`"


class Scope:
    """The program's global names, by kind: dim, const, data, param, let, fn, latent."""

    def __init__(self):
        self.kinds: dict[str, str] = {}
        self.fns: dict[str, ast.Fn] = {}
        self.has_model = False
        self.has_guide = False
        self.consts: dict = {}
        self.dims: dict = {}
        self.typed = None  # (ast.Type, where) -> (Domain, shape); set by the checker
        self.lowers: dict[str, tuple[str, ...]] = {}  # lower block (mid, mid.inner) -> its params' names (check.lower)
        self.lower_prefixes: tuple[str, ...] = ("",)  # inside lower mid: ("mid.", ""), innermost first

    def visible(self) -> list[str]:
        return list(self.kinds)


class Resolver:
    def __init__(self, scope: Scope):
        self.scope = scope
        self.draws: set[str] = set()  # names bound by `z ~ guide` in the enclosing expect

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
        if isinstance(e, ast.Member) and self._lower_path(e.value, local) is not None:
            return self._lower_member(e, self._lower_path(e.value, local))
        if isinstance(e, ast.Member):
            raise unsupported("lower-level solutions (bilevel problems) are", e.span,
                              f"'{e.name}' of a lower block needs bilevel support, which comes later")
        if isinstance(e, ast.Expect):
            return self._expect(e, local)
        raise TypeError_(f"unexpected {type(e).__name__}", getattr(e, "span", None))

    def _lower_path(self, e, local: frozenset) -> str | None:
        """The lower block that ``e`` names (``inner``, ``mid.inner``; inside ``lower mid`` also its
        nested ``inner``, as ``mid.inner``), None when it names none."""
        parts = []
        while isinstance(e, ast.Member):
            parts.append(e.name)
            e = e.value
        if not isinstance(e, ast.Name) or e.id in local:
            return None
        path = ".".join([e.id, *reversed(parts)])
        for prefix in self.scope.lower_prefixes:  # the innermost enclosing lower block first
            if prefix + path in self.scope.lowers:
                return prefix + path
        return None

    def _lower_member(self, e: ast.Member, block: str) -> ir.Ref:
        """``inner.w``: the lower block's solution for its param ``w`` (check.lower)."""
        known = self.scope.lowers[block]
        if e.name not in known:
            raise NameError_(f"lower {block} has no param '{e.name}'", e.span,
                             did_you_mean(e.name, known) or f"its params: {', '.join(known)}")
        return ir.Ref("lower", f"{block}.{e.name}", span=e.span)

    def _name(self, e: ast.Name, local: frozenset) -> ir.Expr:
        if e.id in local:
            return ir.Ref("local", e.id, span=e.span)
        kind = self.scope.kinds.get(e.id)
        if kind == "lower":
            raise TypeError_(f"'{e.id}' is a lower block, not a value", e.span,
                             f"its solution is {e.id}.<param>, e.g. {e.id}.{(self.scope.lowers[e.id] or ('w',))[0]}")
        if kind == "fn" or (kind is None and (e.id in FUNCTIONS or e.id in DISTRIBUTIONS)):
            raise TypeError_(f"'{e.id}' is a function, not a value", e.span, f"call it: {e.id}(...)")
        if kind == "latent":
            raise TypeError_(f"'{e.id}' is a latent variable: it has no single value outside the model, "
                             "the guide and expect blocks", e.span,
                             "report a guide parameter instead; posterior summaries are in the result")
        if kind is not None:
            return ir.Ref(kind, e.id, span=e.span)
        if e.id in VI_OBJECTIVES and kind is None:
            raise TypeError_(f"'{e.id}' is a variational objective: call it", e.span,
                             f"write {e.id}(particles = 8)" if e.id != "renyi" else "write renyi(0.5, 8)")
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
        if name in ("logp", "logq") and name not in self.scope.kinds:
            return self._log_density(e, local)
        if name in VI_OBJECTIVES and name not in self.scope.kinds:
            return self._vi_objective(e)
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

    # ---- probabilistic expressions -------------------------------------------------------------
    def _int_arg(self, value, what: str, span) -> int:
        if not (isinstance(value, ast.Number) and float(value.value) == int(value.value) and value.value >= 1):
            raise TypeError_(f"{what} must be a whole number >= 1", getattr(value, "span", span), f"e.g. {what} = 8")
        return int(value.value)

    def _vi_objective(self, e: ast.Call) -> ir.VIObjective:
        name = e.func.id
        if not self.scope.has_model:
            raise TypeError_(f"{name}() needs a model block", e.span, "declare model { ... } and a guide")
        params = ["alpha", "particles"] if name == "renyi" else ["particles"]
        bound = dict(zip(params, e.args))
        for k in e.kwargs:
            if k.name not in params:
                raise TypeError_(f"{name}() has no argument '{k.name}'", k.span, f"its arguments: {', '.join(params)}")
            bound[k.name] = k.value
        particles = self._int_arg(bound["particles"], "particles", e.span) if "particles" in bound else 1
        alpha = 0.0
        if name == "renyi":
            a = bound.get("alpha")
            if isinstance(a, ast.UnaryOp) and isinstance(a.operand, ast.Number):
                a = ast.Number(-a.operand.value, span=a.span)
            if not isinstance(a, ast.Number) or float(a.value) == 1.0:
                raise TypeError_("renyi(alpha, particles) needs a number alpha != 1", e.span,
                                 "alpha = 1 is the ELBO: use elbo(particles)")
            alpha = float(a.value)
        return ir.VIObjective(name, particles, alpha, span=e.span)

    def _log_density(self, e: ast.Call, local: frozenset) -> ir.LogDensity:
        block = "model" if e.func.id == "logp" else "guide"
        ok = (len(e.args) == 2 and not e.kwargs and isinstance(e.args[0], ast.Name) and e.args[0].id == block
              and isinstance(e.args[1], ast.Name))
        if not ok:
            raise TypeError_(f"write {e.func.id}({block}, z) with z drawn by `z ~ guide`", e.span, None)
        draw = e.args[1].id
        if draw not in self.draws:
            raise TypeError_(f"'{draw}' is not a draw of the guide", e.args[1].span,
                             f"draw it first inside the expect block: {draw} ~ guide")
        if not self.scope.has_model:
            raise TypeError_(f"{e.func.id}() needs a model block", e.span, None)
        return ir.LogDensity(block, draw, span=e.span)

    def _expect(self, e: ast.Expect, local: frozenset) -> ir.Expect:
        particles = 1
        for a in e.args:
            particles = self._int_arg(a, "particles", e.span)
        for k in e.kwargs:
            if k.name != "particles":
                raise TypeError_(f"expect() has no argument '{k.name}'", k.span, "its argument: particles")
            particles = self._int_arg(k.value, "particles", e.span)
        stmts = []
        saved = set(self.draws)
        try:
            for s in e.body.stmts:
                if isinstance(s, ast.Let):
                    stmts.append(ir.LetStmt(s.name, self._expr(s.value, local), span=s.span))
                    local = local | {s.name}
                elif isinstance(s, ast.Sample) and isinstance(s.dist, ast.Name) and s.dist.id == "guide":
                    if not self.scope.has_guide:
                        raise TypeError_("`~ guide` needs a guide", s.dist.span, "declare guide { ... } or guide = mean_field")
                    stmts.append(ir.DrawGuide(s.name, span=s.span))
                    self.draws.add(s.name)
                elif isinstance(s, ast.Sample):
                    stmts.append(self.sample(s, local, observed=False))
                    local = local | {s.name}
                else:
                    raise TypeError_("'target +=' belongs in a model block", s.span, None)
            value = self._expr(e.body.value, local)
        finally:
            self.draws = saved
        return ir.Expect(particles, tuple(stmts), value, span=e.span)

    def sample(self, s: ast.Sample, local: frozenset, observed: bool, allow_family: bool = False) -> ir.Sample:
        """A sample statement: its distribution (or per-site family), estimator and declared type."""
        via = config_value(s.via, self.scope) if s.via is not None else None
        if isinstance(s.dist, ast.Name) and s.dist.id in FAMILY_WORDS or (
                isinstance(s.dist, ast.Call) and isinstance(s.dist.func, ast.Name) and s.dist.func.id in FAMILY_WORDS):
            if not allow_family:
                raise TypeError_(f"'{s.dist.id if isinstance(s.dist, ast.Name) else s.dist.func.id}' is a guide "
                                 "family: it belongs in a guide block", s.dist.span, None)
            return ir.Sample(s.name, None, via, observed, family=config_value(s.dist, self.scope), span=s.span)
        dist = self._expr(s.dist, local)
        # any expression whose value is a distribution: a call of one, mixture(...), a let or a
        # function giving one; a value that is not one is found by shape inference (check.shapes)
        if isinstance(dist, (ir.Lit, ir.ArrayLit)) or (
                isinstance(dist, ir.Ref) and dist.kind in ("data", "param", "const", "dim")):
            raise TypeError_("the right side of '~' must be a distribution", s.dist.span, NOT_A_DISTRIBUTION)
        domain, shape = None, None
        if s.type is not None:
            domain, shape = self.scope.typed(s.type, f"latent {s.name}")
        return ir.Sample(s.name, dist, via, observed, domain, shape, span=s.span)

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
