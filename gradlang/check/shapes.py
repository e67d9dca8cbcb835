"""Shape and element-type inference by abstract evaluation.

Each symbolic dim (``N``, bound later by the data) gets a distinct sentinel size; the program's
lets, objectives, reports and inits are then evaluated under ``jax.eval_shape``, so NumPy's own
broadcasting and shape rules apply, and the evaluator raises a located error at the first node
whose operands do not fit.  Sentinels are mapped back to names in messages and in ``infer``.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..backend.evaluate import Evaluator
from ..lib.estimators.gumbel import RELAXED, relaxed_shape
from ..errors import GradlangError, TypeError_
from ..ir import nodes as ir
from ..ir.visit import refs, walk
from .names import NOT_A_DISTRIBUTION

_DTYPES = {"real": jnp.float32, "int": jnp.int32, "bool": jnp.bool_}
_FIRST_SENTINEL = 100_003  # far from any size a program writes by hand


def symbolic_dims(program: ir.Program) -> list[str]:
    names = []
    for decl in list(program.data.values()) + list(program.params.values()):
        for d in ir.size_names(decl.type.shape):
            if d not in names:
                names.append(d)
    return names


def abstract_size(d, sizes: dict):
    """A dim at the placeholder sizes: a size expression (``K - 1``) is computed from them, kept a
    non-negative integer so that it stands for some size (its name is mapped back by ``dim_names``)."""
    if not isinstance(d, ir.SizeExpr):
        return sizes.get(d, d) if isinstance(d, str) else d
    value = d.value(sizes)
    return abs(int(value)) if value == value else 0


def concrete(shape, sizes: dict) -> tuple:
    return tuple(abstract_size(d, sizes) for d in shape)


def abstract_inputs(program: ir.Program, sizes: dict[str, int]):
    """ShapeDtypeStructs for data and (constrained) params, with symbolic dims at ``sizes``."""
    data = {n: jax.ShapeDtypeStruct(concrete(d.type.shape, sizes), _DTYPES[d.type.elem])
            for n, d in program.data.items()}
    params = {n: jax.ShapeDtypeStruct(concrete(p.type.shape, sizes), jnp.float32) for n, p in program.params.items()}
    for low in program.lowers.values():  # a lower level's solution, NAME.p (check.lower)
        params.update({p.name: jax.ShapeDtypeStruct(concrete(p.type.shape, sizes), jnp.float32) for p in low.params})
    return data, params


def _sentinels(program: ir.Program) -> dict[str, int]:
    # spaced by a prime, so that a size expression (K - 1, 2 * N) rarely lands on another's sentinel
    return {name: _FIRST_SENTINEL + 1009 * i for i, name in enumerate(symbolic_dims(program))}


_NEAR = 500  # a size this close to a sentinel is that dim plus a constant (sentinels are 1009 apart)


class DimNames(dict):
    """Placeholder sizes -> names, which also names the sizes the program derives from a
    symbolic dim at run time (a slice ``r[1:]`` of an ``N``-vector is ``N - 1``, a concatenation
    ``2 * N``): ``get`` writes such a size as the dim's name plus or times a constant, so no
    placeholder number reaches a message or the printed IR."""

    def get(self, size, default=None):
        if size in self:
            return self[size]
        if isinstance(size, int) and size >= _FIRST_SENTINEL - _NEAR:
            for value, name in self.items():
                if name.isidentifier():  # a symbolic dim's own sentinel
                    if abs(size - value) <= _NEAR:
                        k = size - value
                        return f"{name} + {k}" if k > 0 else f"{name} - {-k}"
                    if size % value == 0:
                        return f"{size // value} * {name}"
        return default


def dim_names(program: ir.Program, sizes: dict[str, int]) -> DimNames:
    """Placeholder sizes -> what they stand for in messages: a symbolic dim's name, or a declared
    size expression as written (``K - 1``)."""
    names = DimNames({v: k for k, v in sizes.items()})
    shapes = [d.type.shape for d in list(program.data.values()) + list(program.params.values())]
    if program.model is not None:
        shapes += [st.shape for st in program.model.stmts if isinstance(st, ir.Sample) and st.shape]
    for shape in shapes:
        for d in shape:
            if isinstance(d, ir.SizeExpr):
                names.setdefault(abstract_size(d, sizes), str(d))
    return names


def evaluate_abstract(program: ir.Program, expr, record: dict | None = None):
    sizes = _sentinels(program)
    data, params = abstract_inputs(program, sizes)
    names = dim_names(program, sizes)
    dims = {**program.dims, **sizes}

    def run(data, params):
        ev = Evaluator(program, data, params, program.consts, dims, record=record, dim_names=names,
                       abstract=True)
        value = ev.eval(expr)
        return None if hasattr(value, "log_prob") else value

    return jax.eval_shape(run, data, params), names


def _type(struct, names) -> str:
    if struct is None:
        return "a distribution"
    elem = "bool" if struct.dtype == jnp.bool_ else ("int" if jnp.issubdtype(struct.dtype, jnp.integer) else "real")
    if not struct.shape:
        return elem
    return f"{elem}[{', '.join(names.get(d, str(d)) for d in struct.shape)}]"


def check(program: ir.Program) -> list[GradlangError]:
    """Evaluate every let, objective, report and init abstractly; return the errors found."""
    errors: list[GradlangError] = []
    failed: set[str] = set()

    def attempt(expr, depends_on_failed: bool):
        if depends_on_failed:
            return None
        try:
            return evaluate_abstract(program, expr)
        except GradlangError as err:
            errors.append(err)
            return None

    for name, expr in program.lets.items():
        if attempt(expr, any(r.name in failed for r in refs(expr, "let"))) is None:
            failed.add(name)
    check_blocks(program, errors)
    for obj in program.objectives:
        if any(isinstance(n, (ir.Expect, ir.VIObjective)) for n in walk(obj.value)):
            continue  # Monte-Carlo objectives are traced when the program is built with its data
        out = attempt(obj.value, any(r.name in failed for r in refs(obj.value, "let")))
        if out is not None:
            struct, names = out
            if obj.each:  # minimize each(v): one objective per entry of the vector v
                if struct is None or len(struct.shape) != 1 or struct.dtype == jnp.bool_:
                    errors.append(TypeError_(f"each(...) takes a real vector, one objective per entry, not "
                                             f"{_type(struct, names)}", obj.span,
                                             "e.g. minimize each((X @ w - y)^2): one loss per row"))
            elif struct is None or struct.shape != ():
                errors.append(TypeError_(f"an objective must be a real scalar, not {_type(struct, names)}",
                                         obj.span, "reduce it, e.g. with mean(...) or sum(...)"))
            elif struct.dtype == jnp.bool_:
                errors.append(TypeError_("an objective must be real, not bool", obj.span, None))
    for name, expr in program.reports.items():
        attempt(expr, any(r.name in failed for r in refs(expr, "let")))
    for low in program.lowers.values():  # a lower level's objective and constraints (check.lower)
        out = attempt(low.objective.value, any(r.name in failed for r in refs(low.objective.value, "let")))
        if out is not None and (out[0] is None or out[0].shape != () or out[0].dtype == jnp.bool_):
            errors.append(TypeError_(f"the objective of lower {low.name} must be a real scalar, not "
                                     f"{_type(*out)}", low.objective.span, "reduce it, e.g. with mean(...) or sum(...)"))
        for c in low.constraints:
            attempt(c.g, any(r.name in failed for r in refs(c.g, "let")))
    for p in program.params.values():
        if p.init is not None and not isinstance(p.init, ir.Dist):
            out = attempt(p.init, False)
            if out is not None:
                struct, names = out
                target = tuple(str(d) if isinstance(d, ir.SizeExpr) else names.get(d, d) for d in p.type.shape)
                try:
                    jnp.broadcast_shapes(struct.shape, concrete(p.type.shape, _sentinels(program)))
                except ValueError:
                    errors.append(TypeError_(f"the initial value of {p.name} is {_type(struct, names)}, "
                                             f"which does not fit its shape {list(target)}", p.init.span,
                                             "use a number, or an array of the declared shape"))
    return errors


class _AbstractMonteCarlo:
    """Stands in for ``backend.vi.VI`` while an expect block's value is evaluated abstractly:
    ``logp``/``logq``, ``elbo``/``iwae``/``renyi`` and nested ``expect`` are real scalars (a nested expect's own value is
    checked as a block of its own)."""

    def expect(self, ev, node, local):
        return jnp.zeros((), jnp.float32)

    def log_density(self, node, local):
        return jnp.zeros((), jnp.float32)

    def objective(self, ev, node, local):
        return jnp.zeros((), jnp.float32)


class _GuideDraw:
    """The draw of ``z ~ guide`` in an abstract expect block: only ``logp``/``logq`` read it."""


def check_blocks(program: ir.Program, errors: list) -> None:
    """Evaluate the model's and guide's statements abstractly: each latent stands for an array of
    its distribution's shape (or its declared shape), so shape errors point at their statement.
    An expect block's value (its last line) is evaluated too and must be a scalar: the
    Monte-Carlo mean is taken over particles of one number each, and a vector there would
    otherwise be found only when the program runs."""
    blocks: list[tuple[tuple, ir.Expect | None]] = [(b.stmts, None) for b in (program.model, program.guide)
                                                    if b is not None]
    blocks += [(n.stmts, n) for o in program.objectives for n in walk(o.value) if isinstance(n, ir.Expect)]
    for stmts, expect in blocks:
        sizes = _sentinels(program)
        data, params = abstract_inputs(program, sizes)
        names = dim_names(program, sizes)

        def run(data, params, stmts=stmts, expect=expect):
            ev = Evaluator(program, data, params, program.consts, {**program.dims, **sizes}, dim_names=names, abstract=True,
                           vi=_AbstractMonteCarlo() if expect is not None else None)
            local: dict = {}
            for st in stmts:
                if isinstance(st, ir.DrawGuide):
                    local[st.name] = _GuideDraw()
                    continue
                if isinstance(st, ir.LetStmt):
                    local[st.name] = ev.eval(st.value, local)
                elif isinstance(st, ir.Factor):
                    value = ev.eval(st.value, local)
                    if jnp.ndim(value) != 0:
                        raise TypeError_("'target +=' needs a scalar", st.value.span, "sum it: target += sum(...)")
                elif isinstance(st, ir.Sample) and st.dist is not None:
                    d = ev.eval(st.dist, local)
                    if not hasattr(d, "log_prob"):
                        raise TypeError_(f"the right side of '~' must be a distribution, not {ev.type_of(d)}",
                                         st.dist.span, NOT_A_DISTRIBUTION)
                    shape = concrete(st.shape, {**program.dims, **sizes}) if st.shape \
                        else tuple(d.batch_shape + d.event_shape)
                    if st.observed:
                        if st.obs is not None:  # a slice or gather of the data: its indices are checked
                            ev.eval(st.obs, local)
                        continue
                    if st.via is not None and st.via.value in RELAXED:  # a relaxed draw: real, one-hot rows
                        local[st.name] = jnp.zeros(relaxed_shape(d, shape), jnp.float32)
                    else:
                        local[st.name] = jnp.zeros(shape, d.support.is_discrete and jnp.int32 or jnp.float32)
                elif isinstance(st, ir.Sample):
                    local[st.name] = jnp.zeros(())
            if expect is not None:
                value = ev.eval(expect.value, local)
                if not hasattr(value, "dtype") and not isinstance(value, (int, float)) or jnp.ndim(value) != 0:
                    raise TypeError_("the last line of an expect block must be a real scalar, not "
                                     f"{ev.type_of(value)}", expect.value.span,
                                     "its mean over the particles is the objective's value: reduce it, "
                                     "e.g. with sum(...) or mean(...)")
            return None

        try:
            jax.eval_shape(run, data, params)
        except GradlangError as err:
            errors.append(err)
        except Exception:  # noqa: BLE001 - left for the traced build to report precisely
            pass


def infer(program: ir.Program, expr) -> dict[int, str]:
    """Types of every node of ``expr``, as text, keyed by ``id(node)`` (for the IR printer)."""
    record: dict = {}
    try:
        _, names = evaluate_abstract(program, expr, record)
    except GradlangError:
        return {}
    return {k: _type(jax.ShapeDtypeStruct(*v), names) for k, v in record.items()}
