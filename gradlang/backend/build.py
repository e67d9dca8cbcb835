"""IR -> an ``eqx.Module``: parameter transforms and initialisation, the objective, the reports.

Parameters live in an unconstrained space; ``biject_to`` of each domain's NumPyro constraint maps
them onto the domain, so the optimiser never leaves it and users only ever see domain values.
A program with a model also carries its ``PPL`` (model and guide as NumPyro programs) and the
parameters of its guide families (``theta.loc``, ``auto_loc``, ...), optimised alongside.
"""

from __future__ import annotations

from collections.abc import Callable

from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import numpyro
from numpyro.distributions.transforms import biject_to

from ..check.types import constraint
from ..errors import InternalError, TypeError_
from ..ir import nodes as ir
from ..ir.visit import walk
from .evaluate import Evaluator
from .guide_setup import prototype
from .ppl import PPL


def is_stochastic(program: ir.Program) -> bool:
    """Whether the objective is a Monte-Carlo estimate (it then needs a fresh key every step)."""
    return any(isinstance(n, (ir.Expect, ir.VIObjective)) for o in program.objectives for n in walk(o.value))


def keeps_state(program: ir.Program) -> bool:
    """Whether some sample site's estimator keeps a running state (an ema baseline)."""
    stmts = list(program.guide.stmts) if program.guide is not None else []
    stmts += [st for o in program.objectives for n in walk(o.value) if isinstance(n, ir.Expect) for st in n.stmts]
    for st in stmts:
        if isinstance(st, ir.Sample) and st.family is None:
            if st.via is None or any(isinstance(n, ir.ConfigValue) and n.value == "ema" for n in walk(st.via)):
                return True
    return False


def batch_axis(program: ir.Program, dims: dict, batch: int | None) -> tuple[str | None, list[str], int]:
    """The batch dim (the symbolic dim leading the most data declarations), the data arrays
    minibatched along it, and its full size."""
    if not batch:
        return None, [], 0
    leads = [d.type.shape[0] for d in program.data.values() if d.type.shape and isinstance(d.type.shape[0], str)]
    if not leads:
        return None, [], 0
    dim = max(set(leads), key=leads.count)
    names = [n for n, d in program.data.items() if d.type.shape and d.type.shape[0] == dim]
    return dim, names, dims[dim]


class Opaque:
    """Holds a static value that JAX must not look into (eqx checks static fields for arrays)."""

    def __init__(self, value):
        self.value = value


class Constrained(NamedTuple):
    """A parameter's value already in its domain, which ``Model.constrain`` passes through: a guide
    fitted in its Laplace frame is handed its scale as the frame makes it (``L0 B``), not through
    the family's transform's inverse and then the transform again (a lower-Cholesky round trip
    every step, with its gradient, that cost a VI fit's compile)."""

    value: Any


class Model(eqx.Module):
    """A checked program with its dims bound: pure functions of (unconstrained params, data)."""

    program: ir.Program = eqx.field(static=True)
    dims: dict = eqx.field(static=True)
    dim_names: dict = eqx.field(static=True)
    ppl: PPL | None = eqx.field(static=True, default=None)
    family_params: Opaque = eqx.field(static=True, default_factory=lambda: Opaque({}))

    @property
    def family(self) -> dict:
        """Guide-family parameters: name -> (constraint, constrained initial value)."""
        return self.family_params.value

    def transform(self, name: str):
        if name in self.family:
            return biject_to(self.family[name][0])
        return biject_to(constraint(self.decl(name).domain))

    def decl(self, name: str) -> ir.ParamDecl:
        """A parameter's declaration: the program's, or a lower block's ``NAME.p`` (bilevel)."""
        if name in self.program.params:
            return self.program.params[name]
        from ..check.lower import lower_param

        return lower_param(self.program, name) or self.program.params[name]

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(int(ir.size_of(d, self.dims)) for d in self.decl(name).type.shape)

    @property
    def stochastic(self) -> bool:
        return is_stochastic(self.program)

    # ---- parameters ----------------------------------------------------------------------------
    def constrain(self, unconstrained: dict) -> dict:
        # a family's parameter may be a tree of arrays (a flow's network weights)
        return {n: u.value if isinstance(u, Constrained) else jax.tree.map(self.transform(n), u)
                for n, u in unconstrained.items()}

    def init(self, key, data: dict) -> dict:
        """Unconstrained initial values: inverse transform of each init; zeros (in the
        unconstrained space) where no init is written, which is the domain's centre.  Guide
        family parameters start where their family puts them."""
        out = {}
        keys = None  # split only for an init that is a draw (a split is one more compile on a first fit)
        ev = self.evaluator({}, data)
        for i, (name, p) in enumerate(self.program.params.items()):
            t = self.transform(name)
            shape = self.shape(name)
            unconstrained_shape = t.inverse_shape(shape)
            if p.init is None:
                out[name] = jax.device_put(np.zeros(unconstrained_shape, np.float32))
                continue
            value = ev.eval(p.init)
            if hasattr(value, "sample"):
                if keys is None:
                    keys = jax.random.split(key, max(len(self.program.params), 1))
                value = value.sample(keys[i], shape[: len(shape) - len(value.event_shape)] if value.event_shape
                                     else shape)
            if isinstance(value, jax.core.Tracer):  # traced (inside a caller's jit): stays in the trace
                value = jnp.broadcast_to(jnp.asarray(value, jnp.float32), shape)
                out[name] = t.inv(value).astype(jnp.float32)
                continue
            # a concrete init (a constant, a draw) is broadcast and checked on the host: as JAX ops
            # each would be compiled on a process's first fit (five executables a shape for a real
            # parameter's check, ~0.3 s on a busy CPU), for values computed once
            value = np.broadcast_to(np.asarray(value, np.float32), shape)
            inside = constraint(p.domain).check(value)
            if not isinstance(inside, jax.core.Tracer) and not bool(np.all(np.asarray(inside))):
                raise TypeError_(f"the initial value of {name} is outside its domain {p.domain}",
                                 p.init.span, "choose a value inside the domain, or leave the init out")
            inverse = t.inv(value)
            # under a trace (the runtime's eval_shape of the init) the transform's ops are traced
            out[name] = (inverse.astype(jnp.float32) if isinstance(inverse, jax.core.Tracer)
                         else jax.device_put(np.asarray(inverse, np.float32)))
        if self.family:
            # one compiled function for all of them (op by op, each inverse transform's few
            # primitives were each compiled on a first fit)
            constraints = {name: c for name, (c, _) in self.family.items()}
            out.update(_family_init_fn(constraints)({name: value for name, (_, value) in self.family.items()}))
        return out

    # ---- values --------------------------------------------------------------------------------
    def evaluator(self, params: dict, data: dict, key=None) -> Evaluator:
        vi = None
        if self.ppl is not None or key is not None:
            from .vi import VI

            vi = VI(self.ppl, data, params, key if key is not None else jax.random.PRNGKey(0))
        return Evaluator(self.program, data, params, self.program.consts, self.dims,
                         dim_names=self.dim_names, vi=vi)

    def objective_values(self, unconstrained: dict, data: dict, key=None) -> jnp.ndarray:
        """Each objective's value as the user wrote it (maximised ones not negated)."""
        with numpyro.validation_enabled(False):
            return self._objective_values(unconstrained, data, key)

    def _objective_values(self, unconstrained: dict, data: dict, key=None, entries: bool = False) -> jnp.ndarray:
        ev = self.evaluator(self.constrain(unconstrained), data, key)
        values = [jnp.asarray(ev.eval(o.value), jnp.float32) for o in self.program.objectives]
        if self.each:  # minimize each(v): the entries of v, or (as written) their mean
            return jnp.ravel(values[0]) if entries else jnp.mean(values[0], keepdims=True)
        return jnp.stack(values)

    @property
    def each(self) -> bool:
        """Whether the objective is ``minimize each(v)``: every entry of v its own objective."""
        return any(o.each for o in self.program.objectives)

    def loss(self, unconstrained: dict, data: dict, key=None) -> jnp.ndarray:
        """The scalar minimised: maximised objectives negated; several combined by the aggregator.
        NumPyro's argument checks are off here: data were checked against supports at build."""
        with numpyro.validation_enabled(False):
            return self._loss(unconstrained, data, key)

    def _loss(self, unconstrained: dict, data: dict, key=None) -> jnp.ndarray:
        objectives = self.program.objectives
        if len(objectives) == 1 and not self.each:  # the common case, without stacking
            ev = self.evaluator(self.constrain(unconstrained), data, key)
            value = ev.eval(objectives[0].value)
            return value if objectives[0].sense == "minimize" else -value
        values = self._objective_values(unconstrained, data, key, entries=True)
        terms = jnp.array([1.0 if o.sense == "minimize" else -1.0 for o in objectives]) * values
        return self.aggregate(terms)

    def aggregate(self, terms):
        """The vector objective's losses combined as the plan says (objectives_to_aggregate)."""
        plan = self.program.aggregate
        if plan is None:
            raise InternalError("several objectives reached the backend without an aggregator", None,
                                "the pass objectives_to_aggregate did not run; this is a bug in gradlang")
        # mean and sum are the loss itself; Jacobian descent has none: its entries' mean is shown
        return jnp.sum(terms) if plan.aggregator.value == "sum" else jnp.mean(terms)

    def loss_and_values(self, unconstrained: dict, data: dict, key, state: dict, entries: bool = False):
        """``(loss, (values, state))``: the scalar minimised, each objective's value as the user
        wrote it (a vector, maximised ones not negated), and the estimators' next running state
        (``state`` in: the loop carry's; ``{}`` when none is kept).  What a solver differentiates.
        With ``entries``, ``values`` are the vector objective's entries (``each(v)``: those of v,
        one per row of a minibatch), what Jacobian descent differentiates."""
        from ..lib.estimators.score import EMA_STATE

        signs = jnp.array([1.0 if o.sense == "minimize" else -1.0 for o in self.program.objectives])
        token = EMA_STATE.set({"in": state, "out": {}})
        try:
            with numpyro.validation_enabled(False):
                if len(self.program.objectives) == 1 and not self.each:  # the common case, without stacking twice
                    loss = self._loss(unconstrained, data, key)
                    values = signs * loss
                else:
                    values = self._objective_values(unconstrained, data, key, entries=True)
                    loss = self.aggregate(signs * values)
                    if self.each and not entries:
                        values = jnp.mean(values, keepdims=True)
            out = EMA_STATE.get()["out"]
        finally:
            EMA_STATE.reset(token)
        return loss, (values, {**state, **out})

    def initial_state(self, unconstrained: dict, data: dict) -> dict:
        """Zeros for every running estimator state the objective keeps (found by tracing it once)."""
        if not self.stochastic or not keeps_state(self.program):
            return {}
        _, (_, state) = jax.eval_shape(lambda u: self.loss_and_values(u, data, jax.random.PRNGKey(0), {}),
                                       unconstrained)
        return jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), state)

    def smooth_loss(self, unconstrained: dict, data: dict) -> jnp.ndarray:
        """The smooth part of a split objective (split_prox): what a proximal method differentiates."""
        with numpyro.validation_enabled(False):
            ev = self.evaluator(self.constrain(unconstrained), data)
            return jnp.asarray(ev.eval(self.program.split.smooth), jnp.float32)

    def reports(self, unconstrained: dict, data: dict) -> dict[str, Any]:
        ev = self.evaluator(self.constrain(unconstrained), data)
        return {n: ev.eval(e) for n, e in self.program.reports.items()}


_FAMILY_INITS: list[tuple[dict, Callable]] = []  # (constraints, their compiled init), newest last


def _family_init_fn(constraints: dict) -> Callable:
    """The compiled ``_family_unconstrained`` for these constraints, shared by every program whose
    families have equal ones (NumPyro's constraints compare equal by value but do not hash): a
    fit in a warm process then compiles nothing for it."""
    for known, fn in _FAMILY_INITS:
        if known.keys() == constraints.keys() and all(_same(known[k], constraints[k]) for k in known):
            return fn
    fn = jax.jit(partial(_family_unconstrained, constraints))
    _FAMILY_INITS.append((constraints, fn))
    del _FAMILY_INITS[:-32]
    return fn


def _same(a, b) -> bool:
    try:
        return a is b or bool(a == b)
    except Exception:  # noqa: BLE001 -- a comparison that cannot be made is not a match
        return False


def _family_unconstrained(constraints: dict, values: dict) -> dict:
    """The guide families' initial values in the unconstrained space, float32."""
    return {name: jax.tree.map(lambda v, t=biject_to(constraints[name]): jnp.asarray(t.inv(v), jnp.float32), value)
            for name, value in values.items()}


def build(program: ir.Program, dims: dict[str, int], data: dict | None = None, batch: int | None = None) -> Model:
    """The model of ``program`` at ``dims``; with a model block, ``data`` (the full arrays) is
    traced once to learn the latents and the guide family's parameters."""
    names: dict[int, str] = {}
    for name, size in dims.items():
        if name not in program.dims:
            names[size] = name if size not in names else names[size]
    model = Model(program, dict(dims), names)
    if program.model is None or data is None:
        return model
    batch_dim, batched, n_rows = batch_axis(program, dims, batch)
    ppl = PPL(program, dict(dims), batch_dim, frozenset(batched), n_rows)
    model = Model(program, dict(dims), names, ppl)
    with jax.ensure_compile_time_eval():  # concrete even when called inside a caller's jit
        data = {k: jnp.asarray(v) for k, v in data.items()}
        params = model.constrain(model.init(jax.random.PRNGKey(0), data))
        family = prototype(ppl, jax.random.PRNGKey(0), data, params)
    return Model(program, dict(dims), names, ppl, Opaque({n: (c, jax.tree.map(np.asarray, v)) for n, (v, c) in family.items()}))
