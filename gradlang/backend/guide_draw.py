"""One draw of the guide, each site drawn by the estimator the plan gives it.

``GuideDraws`` runs the guide (a NumPyro program) under two handlers: ``SiteKeys`` gives each site
its key from one split of the draw's key, and ``ApplyEstimators`` draws each latent site with its
estimator (reparameterised Gaussian sites take their share of one ``NoisePool``; enumerated sites
take the value of the enumeration point).  A ``Draw`` holds the values, log q and the score terms
of the score-function sites.
"""

from __future__ import annotations

from numpyro import handlers
from numpyro.distributions import Delta
from numpyro.primitives import Messenger

from ..errors import InternalError
from ..ir import nodes as ir
from ..lib.estimators import Estimator
from ..lib.estimators.stl import stopped
from ..passes.choose_estimators import build
from .noise import NoisePool
from .ppl import PPL
from .sites import SiteKeys, site_log_prob, split_keys


PATHWISE = ("reparam", "stl", "dreg")  # drawn z = g(eps, phi)
STOPS = ("stl", "dreg")  # log q evaluated with the guide's parameters stopped


class _Everything:
    def __contains__(self, name) -> bool:
        return True


class Draw:
    """One joint draw of the guide: latent values, log q of the draw, score terms by site, and
    ``enum_logq``: the log probability of the sites set to enumerated values (0 without any)."""

    def __init__(self, values: dict, logq, scores: dict, enum_logq=0.0):
        self.values, self.logq, self.scores, self.enum_logq = values, logq, scores, enum_logq


def estimator_of(via: ir.ConfigValue | None, site: str = "?") -> Estimator:
    """The estimator a site's ``via`` names: the pass choose_estimators has written one into every
    site of a guide and of an expect block, and checked that it fits."""
    if via is None:
        raise InternalError(f"sample site '{site}' has no estimator", None,
                            "the pass choose_estimators did not run; this is a bug in gradlang")
    return build(via)


class ApplyEstimators(Messenger):
    """Draws every latent sample site with its estimator (after ``SiteKeys`` has given it a key);
    the sites in ``fixed`` take the value given there (a point of an enumeration), those in
    ``pool`` (reparameterised Gaussian sites) their share of its noise."""

    def __init__(self, fn, scores: dict, fixed: dict, default_via: ir.ConfigValue | None,
                 pool: NoisePool | None = None):
        self.scores, self.fixed, self.default_via, self.pool = scores, fixed, default_via, pool
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        if msg["name"] in self.fixed:
            msg["value"] = self.fixed[msg["name"]]
            return
        infer = msg.get("infer") or {}
        # a guide site's own estimator; an autoguide's sites take the whole family's
        est = estimator_of(infer.get("via") or self.default_via, msg["name"])
        if self.pool is not None and msg["name"] in self.pool.offsets:
            msg["value"] = self.pool.draw(msg["name"], msg["fn"])  # reparam: the path carries the gradient
            return
        key = msg["kwargs"].get("rng_key")
        value, score = est.draw(msg["fn"], key)
        msg["value"] = value
        if score is not None:
            self.scores[msg["name"]] = (score * (msg.get("scale") or 1.0), est)


class GuideDraws:
    """Draws of the guide of ``ppl`` at ``params`` (its families' parameters included)."""

    def __init__(self, ppl: PPL, data: dict, params: dict):
        self.ppl, self.data, self.params = ppl, data, params

    def draw(self, key, fixed: dict | None = None) -> Draw:
        """One draw of the guide, its sites set by their estimators; those in ``fixed`` take the
        values given there, and their log probability is the draw's ``enum_logq``."""
        scores: dict = {}
        fixed = fixed or {}
        pooled = self._pooled_sites()
        keyed = self.ppl.guide_sites - len(pooled)
        keys = split_keys(key, keyed + bool(pooled))  # the pool takes the last
        pool = NoisePool(keys[-1], pooled) if pooled else None
        guide = SiteKeys(self._guide(), keys[:keyed], frozenset(pooled))
        guide = ApplyEstimators(guide, scores, fixed, self.ppl.program.guide.via, pool)
        trace = handlers.trace(guide).get_trace(self.data, self.params)
        logq, enum_logq = 0.0, 0.0
        values = {}
        stops = self._stopped_sites()
        for name, site in trace.items():
            if site["type"] != "sample":
                continue
            fn = site["fn"]
            if name in stops and not isinstance(fn, Delta):  # stl, dreg: log q_stop(phi)(z), z on its path
                fn = stopped(fn)  # (a family's Delta sites carry a Jacobian of z alone: kept)
            lp = site_log_prob(fn, site["value"], site.get("intermediates"))
            logq = logq + (site["scale"] if site["scale"] is not None else 1.0) * lp
            if name in fixed:
                enum_logq = enum_logq + lp
            if not (site.get("infer") or {}).get("is_auxiliary"):
                values[name] = site["value"]
        return Draw(values, logq, scores, enum_logq)

    def _guide(self):
        """The guide, its families' ``numpyro.param`` sites taking the values being optimised."""
        return handlers.substitute(self.ppl.guide_fn, data=self.params)

    def _stopped_sites(self):
        """The sites whose log q is evaluated with the guide's parameters stopped (stl, dreg); a
        whole-guide family's estimator covers all its sites."""
        default = self.ppl.program.guide.via
        if not self.ppl.guide_via:
            return _Everything() if default is not None and default.value in STOPS else frozenset()
        return frozenset(n for n, v in self.ppl.guide_via.items() if (v or default).value in STOPS)

    def _pooled_sites(self) -> dict:
        """The guide's Gaussian sites drawn by reparameterisation, which share one ``NoisePool``:
        name -> the shape of its noise."""
        default = self.ppl.program.guide.via
        return {name: shape for name, shape in self.ppl.gaussian_sites.items()
                if (self.ppl.guide_via.get(name) or default).value in PATHWISE}

    def sample(self, key) -> dict:
        """One joint draw of the latents from the guide by plain sampling, for posterior summaries:
        nothing is differentiated, so no estimator is needed, and enumerated sites are drawn too."""
        keyed = SiteKeys(self._guide(), split_keys(key, self.ppl.guide_sites))
        trace = handlers.trace(keyed).get_trace(self.data, self.params)
        return {name: site["value"] for name, site in trace.items()
                if site["type"] == "sample" and not (site.get("infer") or {}).get("is_auxiliary")}

    def enumerated_sites(self) -> dict:
        """The guide's sites drawn ``via enum``: name -> the values of its finite support."""
        guide = self.ppl.program.guide
        if guide is None or guide.family is not None:
            return {}
        return {st.name: self.ppl.guide_dists[st.name].enumerate_support(expand=False).reshape(-1)
                for st in guide.stmts if isinstance(st, ir.Sample) and st.via.value == "enum"}
