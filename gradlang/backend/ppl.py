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

import math
from typing import Any

import jax
import jax.numpy as jnp
import numpyro
import numpyro.distributions as nd
from numpyro import handlers
from numpyro.distributions.transforms import biject_to

from ..check.types import constraint
from ..errors import TypeError_
from ..ir import nodes as ir
from ..lib.families import FAMILIES
from .evaluate import Evaluator
from .noise import gaussian_form


class Constrained(nd.Distribution):
    """A typed latent (``sigma: positive ~ normal(0, 2)``): the base distribution restricted to
    the declared domain.  Its log density is the truncated one, normaliser included, as Stan's
    ``T[low, high]`` (``truncated``: the site's truncated distribution); the normaliser
    ``log P_base(domain)`` depends on the base's parameters, so dropping it would bias their
    gradients.  Where the domain is not an interval (simplex, ordered, matrix domains) or the base
    has no cdf, ``truncated`` is None and the log density is the base's, unnormalised.  Sampling
    (used only to initialise) maps a base draw onto the domain."""

    def __init__(self, base: nd.Distribution, support, truncated: nd.Distribution | None = None):
        self.base, self._support, self.truncated = base, support, truncated
        super().__init__(base.batch_shape, base.event_shape)

    @property
    def support(self):
        return self._support

    def log_prob(self, value):
        return (self.truncated if self.truncated is not None else self.base).log_prob(value)

    def sample(self, key, sample_shape=()):
        return biject_to(self._support)(self.base.sample(key, sample_shape))


class _Renormalised(nd.Distribution):
    """A univariate ``base`` restricted to ``[low, high]`` through its cdf (for bases NumPyro's
    ``TruncatedDistribution`` does not take: gamma, lognormal, beta, ...):
    ``log p(x) - log(F(high) - F(low))``; ``None`` bounds are the base support's own."""

    def __init__(self, base: nd.Distribution, low, high, support):
        self.base, self._support = base, support
        f_low = base.cdf(jnp.asarray(low, jnp.float32)) if low is not None else 0.0
        f_high = base.cdf(jnp.asarray(high, jnp.float32)) if high is not None else 1.0
        self.log_z = jnp.log(jnp.clip(f_high - f_low, jnp.finfo(jnp.float32).tiny))
        super().__init__(jnp.shape(self.log_z) if jnp.ndim(self.log_z) else base.batch_shape, ())

    @property
    def support(self):
        return self._support

    def log_prob(self, value):
        return self.base.log_prob(value) - self.log_z


def _bounds(c) -> tuple[float, float] | None:
    """The interval ``(low, high)`` of a univariate NumPyro constraint, or None if it is not one."""
    if c is nd.constraints.real:
        return -math.inf, math.inf
    if getattr(c, "event_dim", 0) != 0 or getattr(c, "is_discrete", False):
        return None
    if isinstance(c, (nd.constraints.greater_than, nd.constraints.less_than, nd.constraints.interval)):
        return (float(getattr(c, "lower_bound", -math.inf)), float(getattr(c, "upper_bound", math.inf)))
    return None


TRUNCATABLE = nd.truncated.LeftTruncatedDistribution.supported_types  # normal, cauchy, student_t, ...


def truncated(d: nd.Distribution, support) -> nd.Distribution | None:
    """``d`` (one univariate distribution, as written) truncated to the interval ``support``:
    NumPyro's ``TruncatedDistribution`` for the bases it takes (numerically careful in the tails),
    else the base renormalised through its cdf; None when no truncation applies (the base's
    support lies inside the domain already) or none is available (a non-interval domain, a
    multivariate or discrete base, a base without a cdf)."""
    domain, own = _bounds(support), _bounds(d.support) if d.event_shape == () else None
    if domain is None or own is None:
        return None
    low = domain[0] if domain[0] > own[0] else None
    high = domain[1] if domain[1] < own[1] else None
    if low is None and high is None:
        return None  # the base's support lies inside the domain: the normaliser is 1
    if isinstance(d, TRUNCATABLE) and d.support is nd.constraints.real:
        return nd.TruncatedDistribution(d, low, high)
    try:
        return _Renormalised(d, low, high, support)
    except NotImplementedError:  # no cdf: the log density stays unnormalised (docs/language.md)
        return None


def _site(d: nd.Distribution, shape: tuple | None) -> nd.Distribution:
    if shape is not None:
        batch = tuple(shape[: len(shape) - len(d.event_shape)])
        if tuple(d.batch_shape) != batch:
            d = d.expand(batch)
    if d.batch_shape:
        d = d.to_event(len(d.batch_shape))
    return d


def shaped(d: nd.Distribution, shape: tuple | None, domain: ir.Domain | None = None) -> nd.Distribution:
    """``d`` as one site of ``shape``: expanded, its batch dims moved into the event; with a
    ``domain`` narrower than its support, truncated to it (``Constrained``)."""
    site = _site(d, shape)
    if domain is None or domain.name == "real":
        return site
    support = constraint(domain)
    cut = truncated(d, support)
    return Constrained(site, support, _site(cut, tuple(site.shape())) if cut is not None else None)


def config_args(cfg: ir.ConfigValue) -> tuple[list, dict]:
    """Positional and keyword settings of a family or estimator call, as Python values."""
    def value(v):
        if v.kind == "number":
            return v.value
        if v.kind in ("word", "string"):
            return v.value
        if v.kind == "call":  # ema(0.9) and the like
            return (v.value, [value(a) for a in v.args])
        return [value(a) for a in v.args]

    return [value(a) for a in cfg.args], {k: value(a) for k, a in cfg.kwargs}


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
        self.autoguide = None
        guide = program.guide
        if guide is not None and guide.family is not None:
            args, kwargs = config_args(guide.family)
            family = FAMILIES.get(guide.family.value, guide.family.span).value(*args, **kwargs)
            self.autoguide = family.whole(self._model_unscored)
        # the estimator each guide site names (a whole-guide family names none)
        self.guide_via = {st.name: st.via for st in guide.stmts if isinstance(st, ir.Sample)} \
            if guide is not None and guide.family is None else {}

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
        return tuple(ev.values["dim"][d] if isinstance(d, str) else d for d in shape)

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
                    value = local[st.name] if st.name in local else data[st.name]
                    site_scale = scale if (st.name in self.batched or st.name in batched_lets) else 1.0
                    with handlers.scale(scale=site_scale):
                        numpyro.sample(st.name, shaped(d, tuple(jnp.shape(value))), obs=value,
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

    # ---- set-up ------------------------------------------------------------------------------
    def prototype(self, key, data: dict, params: dict) -> dict:
        """Trace the model once (latent supports and shapes) and then the guide (the families'
        parameters): returns ``{name: (constrained initial value, constraint)}`` of the latter."""
        with numpyro.validation_enabled(True):
            model_trace = handlers.trace(handlers.seed(self.model_fn, key)).get_trace(data, params)
        for name, site in model_trace.items():
            if site["type"] == "sample" and site["is_observed"]:
                _check_support(name, site)
        self.latents = {n: (s["fn"].support, tuple(jnp.shape(s["value"])))
                        for n, s in model_trace.items() if s["type"] == "sample" and not s["is_observed"]}
        if self.program.guide is None:
            return {}
        try:
            guide_trace = handlers.trace(handlers.seed(self.guide_fn, key)).get_trace(data, params)
        except ValueError as err:  # a family that cannot fit this model (NumPyro's own check)
            family = self.program.guide.family
            if family is None:
                raise
            raise TypeError_(f"guide = {family.value} cannot fit this model: {str(err).splitlines()[0]}",
                             family.span, "use mean_field, or another family") from None
        self.guide_sites = sum(s["type"] == "sample" and not s["is_observed"] for s in guide_trace.values())
        self.guide_dists = {n: s["fn"] for n, s in guide_trace.items() if s["type"] == "sample"}
        minibatched = {st.name for st in self.program.model.stmts if isinstance(st, ir.Sample) and self._over_batch(st)}
        for name, fn in self.guide_dists.items():
            form = gaussian_form(fn)
            if form is not None and name not in minibatched:
                self.gaussian_sites[name] = form[1]
        return {n: (s["value"], s["kwargs"].get("constraint", nd.constraints.real))
                for n, s in guide_trace.items() if s["type"] == "param"}


def _check_support(name: str, site) -> None:
    """Observed data must lie in the support of its distribution (checked once, on the full data,
    so that the hot loop runs without NumPyro's per-call validation)."""
    import numpy as np

    if isinstance(site["value"], jax.core.Tracer):
        return  # data traced by the caller's jit: checked when the program is fitted
    fn = site["fn"]
    base = fn
    while hasattr(base, "base_dist"):
        base = base.base_dist
    inside = np.asarray(base.support(site["value"]))
    if not inside.all():
        bad = np.asarray(site["value"])[~inside].ravel()[:3]
        from ..errors import DataError

        raise DataError(f"data '{name}' has values outside the support of {type(base).__name__}: "
                        f"{', '.join(f'{v:g}' for v in bad)}", (site.get("infer") or {}).get("span"),
                        f"its support is {base.support}")


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


def _require_distribution(d, st) -> None:
    if not isinstance(d, nd.Distribution):
        raise TypeError_("the right side of '~' must be a distribution", st.dist.span if st.dist else st.span, None)
