"""IR -> an ``eqx.Module``: parameter transforms and initialisation, the objective, the reports.

Parameters live in an unconstrained space; ``biject_to`` of each domain's NumPyro constraint maps
them onto the domain, so the optimiser never leaves it and users only ever see domain values.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions.transforms import biject_to

from ..check.types import constraint
from ..errors import TypeError_
from ..ir import nodes as ir
from .evaluate import Evaluator


class Model(eqx.Module):
    """A checked program with its dims bound: pure functions of (unconstrained params, data)."""

    program: ir.Program = eqx.field(static=True)
    dims: dict = eqx.field(static=True)
    dim_names: dict = eqx.field(static=True)

    def transform(self, name: str):
        return biject_to(constraint(self.program.params[name].domain))

    def shape(self, name: str) -> tuple[int, ...]:
        return tuple(self.dims[d] if isinstance(d, str) else d for d in self.program.params[name].type.shape)

    # ---- parameters ----------------------------------------------------------------------------
    def constrain(self, unconstrained: dict) -> dict:
        return {n: self.transform(n)(u) for n, u in unconstrained.items()}

    def init(self, key, data: dict) -> dict:
        """Unconstrained initial values: inverse transform of each init; zeros (in the
        unconstrained space) where no init is written, which is the domain's centre."""
        out = {}
        keys = jax.random.split(key, max(len(self.program.params), 1))
        ev = self.evaluator({}, data)
        for k, (name, p) in zip(keys, self.program.params.items()):
            t = self.transform(name)
            shape = self.shape(name)
            unconstrained_shape = t.inverse_shape(shape)
            if p.init is None:
                out[name] = jnp.zeros(unconstrained_shape, jnp.float32)
                continue
            value = ev.eval(p.init)
            if hasattr(value, "sample"):
                value = value.sample(k, shape[: len(shape) - len(value.event_shape)] if value.event_shape
                                     else shape)
            value = jnp.broadcast_to(jnp.asarray(value, jnp.float32), shape)
            inside = jnp.all(constraint(p.domain).check(value))
            if not isinstance(inside, jax.core.Tracer) and not bool(inside):
                raise TypeError_(f"the initial value of {name} is outside its domain {p.domain}",
                                 p.init.span, "choose a value inside the domain, or leave the init out")
            out[name] = t.inv(value).astype(jnp.float32)
        return out

    # ---- values --------------------------------------------------------------------------------
    def evaluator(self, params: dict, data: dict) -> Evaluator:
        return Evaluator(self.program, data, params, self.program.consts, self.dims, dim_names=self.dim_names)

    def objective_values(self, unconstrained: dict, data: dict) -> jnp.ndarray:
        """Each objective's value as the user wrote it (maximised ones not negated)."""
        ev = self.evaluator(self.constrain(unconstrained), data)
        return jnp.stack([jnp.asarray(ev.eval(o.value), jnp.float32) for o in self.program.objectives])

    def loss(self, unconstrained: dict, data: dict) -> jnp.ndarray:
        """The scalar minimised: maximised objectives negated; several combined by the aggregator."""
        objectives = self.program.objectives
        if len(objectives) == 1:  # the common case, without stacking
            ev = self.evaluator(self.constrain(unconstrained), data)
            value = ev.eval(objectives[0].value)
            return value if objectives[0].sense == "minimize" else -value
        values = self.objective_values(unconstrained, data)
        terms = jnp.array([1.0 if o.sense == "minimize" else -1.0 for o in objectives]) * values
        return jnp.mean(terms) if self.program.solve.aggregator == "mean" else jnp.sum(terms)

    def reports(self, unconstrained: dict, data: dict) -> dict[str, Any]:
        ev = self.evaluator(self.constrain(unconstrained), data)
        return {n: ev.eval(e) for n, e in self.program.reports.items()}


def build(program: ir.Program, dims: dict[str, int]) -> Model:
    names: dict[int, str] = {}
    for name, size in dims.items():
        if name not in program.dims:
            names[size] = name if size not in names else names[size]
    return Model(program, dict(dims), names)


def to_numpy(tree) -> Any:
    return jax.tree.map(lambda x: np.asarray(x), tree)
