"""Evaluate IR expressions with JAX.

The evaluator walks the IR once per trace: under ``jax.jit`` the walk happens at trace time only, so
the compiled program is the same XLA graph a hand-written JAX function would give.  Under
``jax.eval_shape`` the same walk is the checker's shape inference, so every shape rule is NumPy's
own and every shape error carries the span of the node that caused it.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from ..errors import GradlangError, InternalError, TypeError_, did_you_mean
from ..ir import nodes as ir
from ..lib.builtins import FUNCTIONS, SEQUENCE_ARG, STATIC_ARGS, STATIC_KWARGS
from ..lib.distributions import DISTRIBUTIONS

_VERBS = {"add": "add", "subtract": "subtract", "multiply": "multiply", "divide": "divide", "floor_divide": "divide",
          "matmul": "matrix-multiply", "power": "raise", "equal": "compare", "not_equal": "compare",
          "less": "compare", "less_equal": "compare", "greater": "compare", "greater_equal": "compare",
          "logical_and": "combine", "logical_or": "combine"}
_OPERATOR_SYMBOLS = {"add": "+", "subtract": "-", "multiply": "*", "divide": "/", "floor_divide": "//", "matmul": "@",
                     "power": "^"}


def elem_name(dtype) -> str:
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return "bool"
    return "int" if np.issubdtype(dtype, np.integer) else "real"


class Evaluator:
    """Evaluates IR against values for data, params, consts and dims.

    ``record``, when given, receives ``id(node) -> (shape, dtype)`` for every array the walk
    produces; ``dim_names`` maps sizes back to symbolic names for messages.
    """

    def __init__(self, program: ir.Program, data: dict, params: dict, consts: dict, dims: dict,
                 record: dict | None = None, dim_names: dict[int, str] | None = None, vi=None,
                 abstract: bool = False):
        self.program = program
        # shape inference at placeholder sizes (check.shapes): nothing may run on a device, so a
        # runtime failure of a library there (an allocation) is gradlang's, not the program's
        self.abstract = abstract
        self.values = {"data": data, "param": params, "const": consts, "dim": dims}
        self.record = record
        self.dim_names = dim_names or {}
        self.vi = vi  # the Monte-Carlo context (backend.vi.VI) of a stochastic objective
        self._lets: dict[str, Any] = {}

    def child(self) -> "Evaluator":
        """The same values with a fresh cache of lets (for a traced sub-computation, e.g. a
        vmapped particle, whose intermediate values must not leak out)."""
        v = self.values
        return Evaluator(self.program, v["data"], v["param"], v["const"], v["dim"], self.record,
                         self.dim_names, self.vi, self.abstract)

    # ---- helpers -----------------------------------------------------------------------------
    def type_of(self, value) -> str:
        if isinstance(value, (bool, np.bool_)):
            return "bool"
        if isinstance(value, (int, np.integer)):
            return "int"
        if isinstance(value, (float, np.floating)):
            return "real"
        if hasattr(value, "shape") and hasattr(value, "dtype"):
            dims = [self.dim_names.get(d, str(d)) for d in value.shape]
            elem = elem_name(value.dtype)
            return f"{elem}[{', '.join(dims)}]" if dims else elem
        if hasattr(value, "log_prob"):
            return f"a {type(value).__name__} distribution"
        return type(value).__name__

    def static(self, value, node: ir.Node, what: str):
        """A value that must be known at compile time (a size, an axis, a slice bound)."""
        if value is None or isinstance(value, (int, np.integer, float, str)):
            return value
        if isinstance(value, (list, tuple)):
            return tuple(self.static(v, node, what) for v in value)
        if isinstance(value, jax.core.Tracer):
            raise TypeError_(f"{what} must be known before the program runs", node.span,
                             "use a number, a dim, a const, or an expression of those")
        arr = np.asarray(value)
        if arr.ndim == 0:
            return arr.item()
        return tuple(arr.tolist())

    def _note(self, node, value):
        if self.record is not None and hasattr(value, "shape") and hasattr(value, "dtype"):
            self.record[id(node)] = (tuple(value.shape), value.dtype)
        return value

    # ---- the walk ----------------------------------------------------------------------------
    def eval(self, e, local: dict | None = None):
        return self._note(e, self._eval(e, local or {}))

    def _eval(self, e, local: dict):
        if isinstance(e, ir.Lit):
            return e.value
        if isinstance(e, ir.Ref):
            return self._ref(e, local)
        if isinstance(e, ir.Prim):
            return self._prim(e, local)
        if isinstance(e, ir.ArrayLit):
            items = [self.eval(i, local) for i in e.items]
            for node, item in zip(e.items[1:], items[1:]):
                if jnp.shape(item) != jnp.shape(items[0]):
                    raise TypeError_(f"the items of an array must have one shape: the first is "
                                     f"{self.type_of(items[0])}, this one {self.type_of(item)}", node.span,
                                     "to join vectors of different lengths use concatenate([...])"
                                     if jnp.ndim(items[0]) == 1 else None)
            stack = lambda: jnp.stack([jnp.asarray(i) for i in items])  # noqa: E731
            if not any(isinstance(i, jax.core.Tracer) for i in items) and _small(stack):
                with jax.ensure_compile_time_eval():  # a literal of constants stays one: [N, N] is a shape
                    return stack()
            return stack()
        if isinstance(e, ir.Index):
            return self._index(e, local)
        if isinstance(e, ir.CallFn):
            fn = self.program.fns[e.name]
            args = {p: self.eval(a, local) for p, a in zip(fn.params, e.args)}
            return self.eval(fn.body, args)
        if isinstance(e, ir.Block):
            scope = dict(local)
            for name, value in e.bindings:
                scope[name] = self.eval(value, scope)
            return self.eval(e.value, scope)
        if isinstance(e, ir.Dist):
            return self._dist(e, local)
        if isinstance(e, (ir.Expect, ir.LogDensity, ir.VIObjective)):
            if self.vi is None:
                raise TypeError_("a Monte-Carlo expression cannot be evaluated here", e.span,
                                 "expect, elbo, iwae and renyi belong in objectives")
            if isinstance(e, ir.VIObjective):
                raise InternalError(f"{e.kind}() reached the backend", e.span,
                                    "the pass lower_vi_objectives did not run; this is a bug in gradlang")
            if isinstance(e, ir.Expect):
                return self.vi.expect(self, e, local)
            return self.vi.log_density(e, local)
        raise TypeError(f"cannot evaluate {type(e).__name__}")

    def _ref(self, e: ir.Ref, local: dict):
        if e.kind == "local":
            return local[e.name]
        if e.kind == "let":
            if e.name not in self._lets:
                self._lets[e.name] = self.eval(self.program.lets[e.name])
            return self._lets[e.name]
        if e.kind == "lower":  # a lower level's solution NAME.p: given with the params
            return self.values["param"][e.name]
        return self.values[e.kind][e.name]

    def _prim(self, e: ir.Prim, local: dict):
        fn: Callable = FUNCTIONS[e.op]
        args = []
        for i, a in enumerate(e.args):
            if SEQUENCE_ARG.get(e.op) == i and isinstance(a, ir.ArrayLit):
                args.append([self.eval(x, local) for x in a.items])
                continue
            value = self.eval(a, local)
            if i in STATIC_ARGS.get(e.op, ()):
                value = self.static(value, a, f"argument {i + 1} of {e.op}")
            args.append(value)
        kwargs = {}
        for k, a in e.kwargs:
            value = self.eval(a, local)
            kwargs[k] = self.static(value, a, f"'{k}' of {e.op}") if k in STATIC_KWARGS else value
        if e.op == "log_prob" and args and not hasattr(args[0], "log_prob"):
            raise TypeError_("log_prob needs a distribution first, like log_prob(normal(0, 1), x)", e.span, None)
        try:
            if not any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves((args, kwargs))) \
                    and _small(lambda: fn(*args, **kwargs)):
                with jax.ensure_compile_time_eval():  # constants stay constants: sizes, axes
                    return fn(*args, **kwargs)
            with _validation_of(args, kwargs):  # a mixture is a distribution built here
                return fn(*args, **kwargs)  # traced where a trace is running: no array is built
        except GradlangError:
            raise
        except Exception as err:  # noqa: BLE001 - sorted by refused_by_library; the rest propagate
            if not refused_by_library(err) or (self.abstract and isinstance(err, _DEVICE_ERRORS)):
                raise  # a bug of gradlang's own: reported as an internal error (exit 2)
            raise self._op_error(e, fn, args, kwargs, err) from None

    def _op_error(self, e: ir.Prim, fn, args, kwargs, err: Exception) -> TypeError_:
        kinds = [self.type_of(a) for a in args]
        detail = str(err).splitlines()[0] if str(err) else type(err).__name__
        if e.op in _VERBS and len(args) == 2:
            symbol = _OPERATOR_SYMBOLS.get(e.op)
            help_ = None
            if e.op == "matmul":
                help_ = "the last dim of the left side must equal the first dim of the right side"
            elif symbol:
                help_ = "shapes broadcast as in NumPy: dims must be equal or 1, counted from the right"
            if any(a is None for a in args):
                return TypeError_("None is not a value", e.span, "it adds an axis inside indexing only: x[:, None]")
            return TypeError_(f"cannot {_VERBS[e.op]} {kinds[0]} and {kinds[1]}", e.span, help_)
        if "unexpected keyword argument" in detail:
            known = _parameters(fn)
            bad = next((k for k in kwargs if k not in known), None) if known else None
            if bad:
                hint = did_you_mean(bad, known) or f"its arguments: {', '.join(known)}"
                return TypeError_(f"{e.op}() has no argument '{bad}'", e.span, hint)
        if "axis" in kwargs and ("out of bounds" in detail or "axis" in detail) and args:
            ndim = getattr(args[0], "ndim", 0)
            return TypeError_(f"axis {kwargs['axis']} is out of range for {kinds[0]}", e.span,
                              f"a {kinds[0]} has axes 0 to {ndim - 1} (or -{ndim} to -1)" if ndim else
                              "a scalar has no axes")
        if e.op == "log_prob" and args and not hasattr(args[0], "log_prob"):
            return TypeError_("log_prob needs a distribution first, like log_prob(normal(0, 1), x)", e.span, None)
        shown = ", ".join(kinds + [f"{k} = {self.type_of(v)}" for k, v in kwargs.items()])
        return TypeError_(f"cannot apply {e.op} to ({shown})", e.span, detail)

    def _index(self, e: ir.Index, local: dict):
        value = self.eval(e.value, local)
        if not hasattr(value, "shape") or isinstance(value, np.ndarray):
            value = jnp.asarray(value)  # a const indexed by a traced integer must be a JAX array
        items = []
        for item in e.items:
            if isinstance(item, ir.SliceIR):
                bounds = [None if b is None else self.static(self.eval(b, local), b, "a slice bound")
                          for b in (item.start, item.stop, item.step)]
                items.append(slice(*bounds))
            elif isinstance(item, ir.Lit) and item.value is None:
                items.append(None)
            else:
                items.append(self.eval(item, local))
        kind = self.type_of(value)
        wanted = sum(1 for i in items if i is not None)
        if wanted > value.ndim:
            raise TypeError_(f"cannot index {kind} with {wanted} indices", e.span,
                             f"it has {value.ndim} dim{'s' if value.ndim != 1 else ''}")
        axis = 0
        for item, node in zip(items, e.items):
            if item is None:
                continue
            if not isinstance(item, slice):
                if isinstance(item, (float, np.floating)) or (hasattr(item, "dtype") and
                                                             jnp.issubdtype(item.dtype, jnp.floating)):
                    raise TypeError_(f"an index must be an integer, not {self.type_of(item)}", node.span,
                                     "round it, or compute it from integers")
                if isinstance(item, (int, np.integer)) and not -value.shape[axis] <= item < value.shape[axis]:
                    size = value.shape[axis]
                    raise TypeError_(f"index {item} is out of range for {kind}", node.span,
                                     f"valid indices on that dim: 0 to {size - 1} (or -{size} to -1)")
            axis += 1
        try:
            return value[tuple(items)]
        except Exception as err:  # noqa: BLE001 - sorted by refused_by_library; the rest propagate
            if not refused_by_library(err):
                raise
            raise TypeError_(f"cannot index {kind} with ({', '.join(self.type_of(i) for i in items)})",
                             e.span, str(err).splitlines()[0]) from None

    def _dist(self, e: ir.Dist, local: dict):
        cls = DISTRIBUTIONS[e.name]
        args = [self.eval(a, local) for a in e.args]
        kwargs = {k: self.eval(a, local) for k, a in e.kwargs}
        try:
            with _validation_of(args, kwargs):
                return cls(*args, **kwargs)
        except Exception as err:  # noqa: BLE001 - sorted by refused_by_library; the rest propagate
            if not refused_by_library(err) or (self.abstract and isinstance(err, _DEVICE_ERRORS)):
                raise
            known = _parameters(cls)
            bad = next((k for k in kwargs if known and k not in known), None)
            if bad:
                return_hint = did_you_mean(bad, known) or f"its arguments: {', '.join(known)}"
                raise TypeError_(f"{e.name}() has no argument '{bad}'", e.span, return_hint) from None
            raise TypeError_(f"cannot build the {e.name} distribution from "
                             f"({', '.join(self.type_of(a) for a in args)})", e.span,
                             str(err).splitlines()[0]) from None


# What XLA raises when a computation runs on the device (an allocation that fails): at placeholder
# sizes nothing should run there, so during shape inference it is gradlang's failure.
_DEVICE_ERRORS = (jax.errors.JaxRuntimeError,)

# The most elements a built-in applied to constants may give and still be computed at trace time
# (kept concrete: a size, an axis, a small table).  Larger results are traced like any other
# value, so shape inference at placeholder sizes (eye(N) with N = 100_003) builds no array.
CONCRETE_LIMIT = 4096


def _small(thunk) -> bool:
    """Whether ``thunk()``'s result is small enough to compute concretely (found abstractly)."""
    out = jax.eval_shape(thunk)
    return sum(int(np.prod(getattr(leaf, "shape", ()))) for leaf in jax.tree.leaves(out)) <= CONCRETE_LIMIT


def _validation_of(args, kwargs):
    """NumPyro checks a distribution's arguments against their constraints when it is built; of
    traced arguments it can check nothing, yet it builds the check's own constants concretely (a
    lower_cholesky check makes an N x N mask), so it is off for them."""
    import contextlib

    import numpyro

    traced = any(isinstance(v, jax.core.Tracer) for v in jax.tree.leaves((args, kwargs)))
    return numpyro.validation_enabled(False) if traced else contextlib.nullcontext()


def _parameters(fn) -> list[str]:
    """Keyword-usable parameter names of a built-in or distribution (empty when unknown)."""
    import inspect

    try:
        target = fn.__init__ if isinstance(fn, type) else fn
        params = inspect.signature(target).parameters.values()
    except (TypeError, ValueError):
        return []
    return [p.name for p in params if p.name not in ("self", "args", "kwargs", "validate_args")
            and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


# What NumPy, JAX and NumPyro raise for arguments they cannot take: shape and broadcasting rules,
# dtypes, axes (AxisError is both a ValueError and an IndexError), sizes, a traced value where a
# concrete one is needed (ConcretizationTypeError is a TypeError), a wrong number of arguments.
ARGUMENT_ERRORS = (TypeError, ValueError, IndexError)
# Raised by those libraries for a program's arguments too, but just as well by a bug: a user's
# error only when the library raised it (arange(0, 5, 0) divides by zero, glu asserts an even
# axis, a constant too large to allocate is a runtime error).
LIBRARY_REFUSALS = (ArithmeticError, AssertionError, RuntimeError)
LIBRARIES = frozenset({"jax", "jaxlib", "numpy", "numpyro", "scipy", "opt_einsum", "ml_dtypes", "optax", "chex"})


def refused_by_library(err: BaseException) -> bool:
    """Whether ``err``, raised by a built-in, a distribution or indexing applied to a program's
    values, is the library refusing those values (a user's error, reported at the node as
    "cannot apply ...") rather than a bug of gradlang's own, which must propagate and be
    reported as an internal error (exit 2) instead of being blamed on the program.  Other
    exceptions (KeyError, AttributeError, NameError, RecursionError, ...) are never the
    program's: its values reach the libraries through calls whose refusals are the kinds above.
    """
    if isinstance(err, ARGUMENT_ERRORS):
        return True
    if isinstance(err, RecursionError) or not isinstance(err, LIBRARY_REFUSALS):
        return False
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "") if tb is not None else ""
    return module.split(".")[0] in LIBRARIES

