"""Model and guide blocks as NumPyro programs.

``model_fn(data, params)`` and ``guide_fn(data, params)`` are ordinary NumPyro model functions
built from the IR: each sample statement becomes ``numpyro.sample`` (observed ones with ``obs=``),
``target +=`` becomes ``numpyro.factor``.  Each site is one log-density term: its distribution is
expanded to the site's shape and its batch dims folded into the event.  With minibatches, sites over
the batch dim are scaled by N / batch (``handlers.scale``).  A whole-guide family is a NumPyro
autoguide of ``model_fn``; its parameters (``numpyro.param`` sites) are discovered by tracing it
once and optimised with the program's own parameters.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import numpyro.distributions as nd
from numpyro import handlers

from ..check.config_value import config_args
from ..check.names import NOT_A_DISTRIBUTION
from ..errors import DataError, TypeError_
from ..ir import nodes as ir
from ..lib.families import FAMILIES
from .evaluate import Evaluator
from .site_dists import shaped


class PPL:
    """The model/guide machinery of one program with its dims bound (static, built once)."""

    def __init__(self, program: ir.Program, dims: dict, batch_dim: str | None, batched: frozenset, n_rows: int):
        self.program = program
        self.dims = dims
        self.batch_dim = batch_dim
        self.batched = batched
        self.n_rows = n_rows
        self.latents: dict[str, tuple[Any, tuple]] = {}  # name -> (support, shape), set by prototype()
        self.guide_sites = 1  # the guide's unobserved sample sites (each takes a key), set by prototype()
        self.guide_dists: dict = {}  # site -> its distribution at the initial values, set by prototype()
        self.gaussian_sites: dict[str, tuple] = {}  # guide sites T(loc + scale * eps) of fixed shape: eps's shape
        self.lets_for_latents = _lets_for_latents(program.model.stmts)
        self._check_batched_indices()
        self.autoguide = None
        guide = program.guide
        if guide is not None and guide.family is not None:
            args, kwargs = config_args(guide.family)
            family = FAMILIES.get(guide.family.value, guide.family.span).value(*args, **kwargs)
            self.autoguide = family.whole(self._model_unscored)
        # the estimator each guide site names (a whole-guide family names none)
        self.guide_via = {st.name: st.via for st in guide.stmts if isinstance(st, ir.Sample)} \
            if guide is not None and guide.family is None else {}

    def _check_batched_indices(self) -> None:
        """An observed slice or gather of minibatched data must keep the batch axis whole
        (``y[:, 0]``, scaled by N / batch like the data): ``y[5:]`` or ``y[idx]`` would pick rows of
        a random minibatch, not of the data."""
        if not (self.batch_dim and self.batched):
            return
        for st in self.program.model.stmts:
            if not (isinstance(st, ir.Sample) and st.obs is not None):
                continue
            first = next((i for i in st.obs.items if not (isinstance(i, ir.Lit) and i.value is None)), None)
            whole = first is None or (isinstance(first, ir.SliceIR) and first.start is None and first.stop is None
                                      and first.step is None)
            if not whole and self._reads_batched(st.obs.value, set()):
                raise TypeError_(f"'{st.label}' indexes the rows of minibatched data: batch draws them at random",
                                 st.obs.span, "observe the whole data (or a slice of its other axes), or drop "
                                 "batch; or declare the rows you observe as data of their own")

    # ---- evaluation context ------------------------------------------------------------------
    def _context(self, data: dict, params: dict) -> tuple[Evaluator, float]:
        dims = dict(self.dims)
        scale = 1.0
        if self.batch_dim and self.batched:
            size = data[next(iter(self.batched))].shape[0]
            dims[self.batch_dim] = size
            scale = self.n_rows / size
        ev = Evaluator(self.program, data, params, self.program.consts, dims)
        return ev, scale

    def _concrete(self, shape, ev: Evaluator) -> tuple:
        return tuple(int(ir.size_of(d, ev.values["dim"])) for d in shape)

    def _over_batch(self, site: ir.Sample) -> bool:
        """A latent over the batch dim (declared shape starting with it) is minibatched too."""
        return bool(self.batch_dim and site.shape and site.shape[0] == self.batch_dim)

    def _latent_scale(self, site: ir.Sample, scale: float) -> float:
        return scale if scale != 1.0 and self._over_batch(site) else 1.0

    def _reads_batched(self, expr, batched_lets: set) -> bool:
        """Whether ``expr`` reads a minibatched data array: directly, through a model let that
        does, or through top-level lets (an observed ``let ly = log(y)`` is over the batch)."""
        todo, seen = [expr], set()
        while todo:
            for r in _refs(todo.pop()):
                if (r.kind == "data" and r.name in self.batched) or (r.kind == "local" and r.name in batched_lets):
                    return True
                if r.kind == "let" and r.name not in seen and r.name in self.program.lets:
                    seen.add(r.name)
                    todo.append(self.program.lets[r.name])
        return False

    # ---- the model ---------------------------------------------------------------------------
    def model_fn(self, data: dict, params: dict, latents_only: bool = False):
        """The model.  ``latents_only``: its latent sites and the lets they need, no observed site
        and no ``target +=`` (all that a whole-guide family's set-up looks at)."""
        ev, scale = self._context(data, params)
        local: dict = {}
        batched_lets: set[str] = set()
        for i, st in enumerate(self.program.model.stmts):
            if latents_only and not _needed_by_latents(st, self.lets_for_latents):
                continue
            if isinstance(st, ir.LetStmt):
                local[st.name] = ev.eval(st.value, local)
                if self._reads_batched(st.value, batched_lets):
                    batched_lets.add(st.name)
            elif isinstance(st, ir.Factor):
                numpyro.factor(f"target:{i}", ev.eval(st.value, local))
            else:
                d = ev.eval(st.dist, local)
                _require_distribution(d, st)
                if st.observed:
                    if st.obs is not None:  # a slice or gather of the data: y[5:] ~ ...
                        value = ev.eval(st.obs, local)
                        _check_observed_index(ev, st, local)
                        reads_batched = self._reads_batched(st.obs, batched_lets)
                    else:
                        value = local[st.name] if st.name in local else data[st.name]
                        reads_batched = st.name in self.batched or st.name in batched_lets
                    with handlers.scale(scale=scale if reads_batched else 1.0):
                        numpyro.sample(st.label or st.name, shaped(d, tuple(jnp.shape(value))), obs=value,
                                       infer={"span": st.span})
                else:
                    shape = self._concrete(st.shape, ev) if st.shape is not None else None
                    with handlers.scale(scale=self._latent_scale(st, scale)):
                        local[st.name] = numpyro.sample(st.name, shaped(d, shape, st.domain),
                                                        infer={"span": st.span})

    def _model_unscored(self, data: dict, params: dict):
        """The model's latent sites with their log densities masked to zero.  A whole-guide family
        runs its model only to set itself up (the latents, their supports and shapes); the whole
        model, unmasked, would have NumPyro also evaluate the joint density and its gradient op by
        op on the full data, to check the initial point, which the loop's own non-finite guard
        covers."""
        with handlers.mask(mask=False):
            return self.model_fn(data, params, latents_only=True)

    # ---- the guide ---------------------------------------------------------------------------
    def guide_fn(self, data: dict, params: dict):
        if self.autoguide is not None:
            return self.autoguide(data, params)
        ev, scale = self._context(data, params)
        local: dict = {}
        model_sites = {s.name: s for s in self.program.model.stmts if isinstance(s, ir.Sample)}
        for st in self.program.guide.stmts:
            if isinstance(st, ir.LetStmt):
                local[st.name] = ev.eval(st.value, local)
                continue
            support, shape = self.latents[st.name]
            declared = model_sites[st.name].shape
            if declared is not None:  # follows the minibatch when it runs over the batch dim
                shape = self._concrete(declared, ev)
            if st.family is not None and scale != 1.0 and declared and declared[0] == self.batch_dim:
                raise TypeError_(f"a {st.family.value} family for '{st.name}' needs one parameter per row of "
                                 "the data, which minibatches do not see", st.family.span,
                                 "compute the distribution from the data (an amortised guide), or drop batch")
            if st.family is not None:
                args, kwargs = config_args(st.family)
                family = FAMILIES.get(st.family.value, st.family.span).value(*args, **kwargs)
                if not hasattr(family, "site"):
                    raise TypeError_(f"'{st.family.value}' is a whole-guide family", st.family.span,
                                     f"write guide = {st.family.value}, or use mean_field for one latent")
                d = family.site(st.name, support, shape)
            else:
                d = ev.eval(st.dist, local)
                _require_distribution(d, st)
                d = shaped(d, shape)
            infer = {"span": st.span, "via": st.via}
            with handlers.scale(scale=self._latent_scale(model_sites[st.name], scale)):
                local[st.name] = numpyro.sample(st.name, d, infer=infer)


def _lets_for_latents(stmts) -> frozenset[str]:
    """The model's lets that its latent sites' distributions need, directly or through other lets."""
    lets = {s.name: s for s in stmts if isinstance(s, ir.LetStmt)}
    todo = [r.name for s in stmts if isinstance(s, ir.Sample) and not s.observed for r in _refs(s.dist)]
    needed: set[str] = set()
    while todo:
        name = todo.pop()
        if name in lets and name not in needed:
            needed.add(name)
            todo += [r.name for r in _refs(lets[name].value)]
    return frozenset(needed)


def _needed_by_latents(st, lets: frozenset[str]) -> bool:
    if isinstance(st, ir.LetStmt):
        return st.name in lets
    return isinstance(st, ir.Sample) and not st.observed


def _refs(expr):
    from ..ir.visit import refs

    return refs(expr)


def _check_observed_index(ev: Evaluator, st: ir.Sample, local: dict) -> None:
    """The indices of an observed slice or gather (``y[5:]``, ``y[idx]``) lie inside the data, checked
    where they are concrete (the set-up trace, with the full data): JAX would clamp an index out of
    range, observing other rows than the program says, and a slice past the end would observe less."""
    index = st.obs
    base = ev.eval(index.value, local)
    if isinstance(base, jax.core.Tracer):
        return
    shape, axis = jnp.shape(base), 0
    what = _data_name(index.value)
    for item in index.items:
        if isinstance(item, ir.Lit) and item.value is None:
            continue
        if axis >= len(shape):
            return  # too many indices: the evaluator has said so
        size = shape[axis]
        axis += 1
        if isinstance(item, ir.SliceIR):
            for bound in (item.start, item.stop):
                value = None if bound is None else ev.eval(bound, local)
                if value is not None and not isinstance(value, jax.core.Tracer) and not -size <= int(value) <= size:
                    raise DataError(f"the slice bound {int(value)} is out of range for {what}, whose dim {axis - 1} "
                                    f"has size {size}", bound.span,
                                    f"slice bounds on that dim lie in -{size} to {size}")
            continue
        value = ev.eval(item, local)
        if isinstance(value, jax.core.Tracer):
            continue
        values = np.asarray(value)
        bad = values[(values < -size) | (values >= size)] if values.dtype.kind in "iu" else values[:0]
        if bad.size:
            raise DataError(f"index {bad.ravel()[0]} is out of range for {what}, whose dim {axis - 1} has size "
                            f"{size}" + (f" ({bad.size} indices are)" if bad.size > 1 else ""), item.span,
                            f"valid indices on that dim: 0 to {size - 1} (or -{size} to -1)")


def _data_name(e) -> str:
    return f"data '{e.name}'" if isinstance(e, ir.Ref) and e.kind == "data" else f"'{getattr(e, 'name', '?')}'"


def _require_distribution(d, st) -> None:
    if not isinstance(d, nd.Distribution):
        raise TypeError_(f"the right side of '~' must be a distribution, not {type(d).__name__}",
                         st.dist.span if st.dist else st.span, NOT_A_DISTRIBUTION)
