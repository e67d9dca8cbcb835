"""Monte-Carlo objectives: ``expect { ... }``, ``elbo``, ``iwae``, ``renyi``.

Each particle runs the block's statements with its own key (particles are ``vmap``ped).  A sample
statement draws with its estimator: reparameterised draws carry gradients along the path;
score-function draws are constants whose ``log q`` enters a surrogate

    L = mean_k [ f_k + sum_s stop(f_k - b_sk) * (log q_s(z_sk) - stop(log q_s(z_sk))) ]

whose value is the Monte-Carlo estimate and whose gradient is the score-function estimator with
baseline ``b`` (Williams 1992; "magic box" form of Foerster et al., DiCE, ICML 2018).

``elbo(K)`` is ``expect(K) { z ~ guide; logp(model, z) - logq(guide, z) }``; ``iwae(K)`` is
``log mean_k exp(w_k)`` (Burda, Grosse & Salakhutdinov, ICLR 2016) and ``renyi(a, K)`` is
``1/(1-a) log mean_k exp((1-a) w_k)`` (Li & Turner, NeurIPS 2016), with ``w_k`` the log weights.
"""

from __future__ import annotations

import contextvars
import math

import jax
import jax.numpy as jnp
from numpyro import handlers
from numpyro.primitives import Messenger

from ..errors import TypeError_
from ..ir import nodes as ir
from ..lib.estimators import ESTIMATORS, Estimator, default_estimator
from .ppl import PPL, config_args, shaped
from .sites import SiteKeys, model_log_density, site_log_prob


class Draw:
    """One joint draw of the guide: latent values, log q of the draw, score terms by site."""

    def __init__(self, values: dict, logq, scores: dict):
        self.values, self.logq, self.scores = values, logq, scores


OVERRIDES: contextvars.ContextVar[dict | None] = contextvars.ContextVar("estimator_overrides", default=None)


def build_estimator(via: ir.ConfigValue | None, dist, particles: int, span, site: str = "?"):
    """The estimator a site names (or the default for its distribution); a misfit is a located error
    naming the site and the distribution.  ``OVERRIDES`` (site -> setting) replaces what the
    program says, for the diagnostics."""
    via = (OVERRIDES.get() or {}).get(site, via)
    if via is None:
        return default_estimator(dist, particles)
    args, kwargs = config_args(via)
    try:
        est = ESTIMATORS.get(via.value, via.span).value(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise TypeError_(f"wrong settings for {via.value}: {err}", via.span, None) from None
    why = est.check(dist)
    if why:
        raise TypeError_(f"site '{site}': {why}", via.span,
                         "use score(baseline = rloo) for a discrete site (or enum for a finite support)")
    return est


class ApplyEstimators(Messenger):
    """Draws every latent sample site with its estimator (after ``seed`` has given it a key)."""

    def __init__(self, fn, particles: int, scores: dict):
        self.particles, self.scores = particles, scores
        super().__init__(fn)

    def process_message(self, msg):
        if msg["type"] != "sample" or msg["is_observed"] or msg["value"] is not None:
            return
        infer = msg.get("infer") or {}
        est = build_estimator(infer.get("via"), msg["fn"], self.particles, infer.get("span"), msg["name"])
        key = msg["kwargs"].get("rng_key")
        value, score = est.draw(msg["fn"], key)
        msg["value"] = value
        if score is not None:
            self.scores[msg["name"]] = (score * (msg.get("scale") or 1.0), est)


class VI:
    """Evaluates the Monte-Carlo nodes of one trace of the objective."""

    def __init__(self, ppl: PPL, data: dict, params: dict, key):
        self.ppl, self.data, self.params = ppl, data, params
        self.key = key
        self._used = False
        self.estimators: dict = {}  # site -> Estimator, filled while tracing (static)

    def next_key(self):
        """The key of the next Monte-Carlo node: the trace's own key for the first (most objectives
        have one), split only when there are more (every split costs a threefry in the step)."""
        if not self._used:
            self._used = True
            return self.key
        self.key, sub = jax.random.split(self.key)
        return sub

    # ---- pieces ------------------------------------------------------------------------------
    def draw_guide(self, key, particles: int) -> Draw:
        scores: dict = {}
        # the guide families' numpyro.param sites take the values being optimised
        guide = SiteKeys(handlers.substitute(self.ppl.guide_fn, data=self.params), key, self.ppl.guide_sites)
        trace = handlers.trace(ApplyEstimators(guide, particles, scores)).get_trace(self.data, self.params)
        logq = 0.0
        values = {}
        for name, site in trace.items():
            if site["type"] != "sample":
                continue
            lp = site_log_prob(site["fn"], site["value"], site.get("intermediates"))
            logq = logq + (site["scale"] if site["scale"] is not None else 1.0) * lp
            if not (site.get("infer") or {}).get("is_auxiliary"):
                values[name] = site["value"]
        return Draw(values, logq, scores)

    def log_density(self, node: ir.LogDensity, local: dict):
        draw = local[node.draw]
        if node.block == "guide":
            return draw.logq
        return model_log_density(self.ppl.model_fn, (self.data, self.params), draw.values)

    # ---- expect ------------------------------------------------------------------------------
    def particle_values(self, ev, node: ir.Expect, local: dict):
        """Per-particle values f [K] and score terms {site: [K]} (with their estimators)."""
        def one(key):
            scores: dict = {}
            f = self._run(ev.child(), node, 0, dict(local), key, scores, False)
            for name, (_, est) in scores.items():
                self.estimators[name] = est
            return f, {n: s for n, (s, _) in scores.items()}

        if node.particles == 1:  # no split and no vmap for a single particle
            f, scores = one(self.next_key())
            return f[None], {n: s[None] for n, s in scores.items()}
        keys = jax.random.split(self.next_key(), node.particles)
        return jax.vmap(one)(keys)

    def _run(self, ev, node: ir.Expect, i: int, scope: dict, key, scores: dict, repeated: bool):
        """The statements from ``i`` on, then the value.  Each sample statement hands the rest of
        the block to its estimator as a continuation, so enum and mvd can run it at other values.
        ``repeated``: inside such a continuation, where a score term would be counted twice."""
        if i == len(node.stmts):
            f = ev.eval(node.value, scope)
            if jnp.ndim(f) != 0:
                raise TypeError_("the last line of an expect block must be a scalar", node.value.span,
                                 "reduce it, e.g. with sum(...)")
            return jnp.asarray(f, jnp.float32)
        st = node.stmts[i]
        if isinstance(st, ir.LetStmt):
            return self._run(ev, node, i + 1, {**scope, st.name: ev.eval(st.value, scope)}, key, scores, repeated)
        last = not any(isinstance(s, (ir.Sample, ir.DrawGuide)) for s in node.stmts[i + 1:])
        key, sub = (None, key) if last else jax.random.split(key)  # the last draw takes the key itself
        if isinstance(st, ir.DrawGuide):
            draw = self.draw_guide(sub, node.particles)
            self._add_scores(scores, draw.scores, repeated, st)
            return self._run(ev, node, i + 1, {**scope, st.name: draw}, key, scores, repeated)
        dist = ev.eval(st.dist, scope)
        if st.shape is not None:  # a declared shape: the distribution expanded to it, as in a model
            dist = shaped(dist, tuple(ev.values["dim"][d] if isinstance(d, str) else d for d in st.shape))
        est = build_estimator(st.via, dist, node.particles, st.span, st.name)
        multi = type(est).apply is not Estimator.apply  # runs the rest more than once

        def cont(value):
            return self._run(ev, node, i + 1, {**scope, st.name: value}, key, scores, repeated or multi)

        found: dict = {}
        f = est.apply(dist, sub, cont, found, st.name)
        self._add_scores(scores, found, repeated, st)
        return f

    @staticmethod
    def _add_scores(scores: dict, found: dict, repeated: bool, st) -> None:
        if found and repeated:
            raise TypeError_("a score-function site after an enum or mvd site is not supported yet", st.span,
                             "put the score-function sites first, or use reparam/enum after it")
        scores.update(found)

    def expect(self, ev, node: ir.Expect, local: dict):
        f, scores = self.particle_values(ev, node, local)
        surrogate = f
        for name, s in scores.items():
            b = self.estimators[name].baseline(jax.lax.stop_gradient(f), name)
            surrogate = surrogate + jax.lax.stop_gradient(f - b) * (s - jax.lax.stop_gradient(s))
        return jnp.mean(surrogate)

    def objective(self, ev, node: ir.VIObjective, local: dict):
        weight = ir.Prim("subtract", (ir.LogDensity("model", "_z", span=node.span),
                                      ir.LogDensity("guide", "_z", span=node.span)), span=node.span)
        body = ir.Expect(node.particles, (ir.DrawGuide("_z", span=node.span),), weight, span=node.span)
        if node.kind == "elbo":
            return self.expect(ev, body, local)
        w, scores = self.particle_values(ev, body, local)
        a = 0.0 if node.kind == "iwae" else node.alpha
        bound = (jax.nn.logsumexp((1.0 - a) * w) - math.log(node.particles)) / (1.0 - a)
        for s in scores.values():  # score terms: the bound as the reward of all particles (no baseline)
            bound = bound + jax.lax.stop_gradient(bound) * jnp.sum(s - jax.lax.stop_gradient(s))
        return bound
