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

import math

import jax
import jax.numpy as jnp

from ..errors import TypeError_
from ..ir import nodes as ir
from ..passes.choose_estimators import reruns
from .guide_draw import Draw, GuideDraws, estimator_of
from .ppl import PPL
from .site_dists import shaped
from .sites import model_log_density

REJECTED, DRAWS, LAST = "rejected_draws", "draws", "last_estimate_"  # keys of the loop's estimator state


class VI:
    """Evaluates the Monte-Carlo nodes of one trace of the objective."""

    def __init__(self, ppl: PPL, data: dict, params: dict, key):
        self.ppl, self.data, self.params = ppl, data, params
        self.guide = GuideDraws(ppl, data, params)
        self.key = key
        self._used = False
        self._expects = 0  # the Monte-Carlo blocks estimated so far in this trace (their state's slot)
        self.estimators: dict = {}  # site -> Estimator, filled while tracing (static)
        self._stop_path = False  # set while DReG evaluates the particles at draws held constant
        plan = getattr(ppl.program, "vi_defaults", None) if ppl is not None else None
        # choose_vi_defaults' choice: particles with a non-finite value or gradient are rejected
        self.reject = bool(getattr(plan, "reject_nonfinite", False))

    def next_key(self):
        """The key of the next Monte-Carlo node: the trace's own key for the first (most objectives
        have one), split only when there are more (every split costs a threefry in the step)."""
        if not self._used:
            self._used = True
            return self.key
        self.key, sub = jax.random.split(self.key)
        return sub

    def log_density(self, node: ir.LogDensity, local: dict):
        draw = local[node.draw]
        if node.block == "guide":
            return draw.logq
        return model_log_density(self.ppl.model_fn, (self.data, self.params), draw.values)

    # ---- expect ------------------------------------------------------------------------------
    def particle_values(self, ev, node: ir.Expect, local: dict):
        """Per-particle values f [K], score terms {site: [K]} (with their estimators) and which
        particles are accepted, ok [K]: all of them, or with ``self.reject`` those whose value, score
        terms and gradients are finite (``finite_particles``; a rejected one adds nothing to the
        gradient)."""
        def one(key):
            scores: dict = {}
            f = self._run(ev.child(), node, 0, dict(local), key, scores, False)
            for name, (_, est) in scores.items():
                self.estimators[name] = est
            return f, {n: s for n, (s, _) in scores.items()}

        if self.reject:
            from .finite_particles import finite_particles

            keys = jax.random.split(self.next_key(), node.particles) if node.particles > 1 else self.next_key()[None]
            (f, scores), ok = finite_particles(one, keys)
            return f, scores, ok
        if node.particles == 1:  # no split and no vmap for a single particle
            f, scores = one(self.next_key())
            return f[None], {n: s[None] for n, s in scores.items()}, None
        keys = jax.random.split(self.next_key(), node.particles)
        return (*jax.vmap(one)(keys), None)

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
            return self._guide_then_rest(ev, node, i, scope, key, sub, scores, repeated)
        dist = ev.eval(st.dist, scope)
        if st.shape is not None:  # a declared shape: the distribution expanded to it, as in a model
            dist = shaped(dist, tuple(int(ir.size_of(d, ev.values["dim"])) for d in st.shape))
        est = estimator_of(st.via, st.name)
        multi = reruns(est)  # enum, mvd and the greedy baseline run the rest more than once

        def cont(value):
            return self._run(ev, node, i + 1, {**scope, st.name: value}, key, scores, repeated or multi)

        found: dict = {}
        f = est.apply(dist, sub, cont, found, st.name)
        return self._with_scores(f, found, scores, repeated, st)

    def _guide_then_rest(self, ev, node: ir.Expect, i: int, scope: dict, key, sub, scores: dict, repeated: bool):
        """``z ~ guide`` and the statements after it.  Guide sites ``via enum`` are summed over: the
        guide and the rest run at every point of their joint support (one vmapped call), weighted by
        its probability under the guide, E_q[f] = sum_e q(e) E_q[f | e] (as Pyro's TraceEnum_ELBO
        does for guide-side enumeration)."""
        st = node.stmts[i]

        def run(fixed: dict, nested: bool):
            draw = self.guide.draw(sub, fixed)
            if self._stop_path:  # the draw held constant: only the model's parameters move f
                stop = jax.lax.stop_gradient
                draw = Draw(stop(draw.values), stop(draw.logq), draw.scores, draw.enum_logq)
            f = self._run(ev, node, i + 1, {**scope, st.name: draw}, key, scores, nested)
            return self._with_scores(f, draw.scores, scores, nested, st), draw

        supports = self.guide.enumerated_sites()
        if not supports:
            return run({}, repeated)[0]
        names = list(supports)
        grid = jnp.meshgrid(*(supports[n] for n in names), indexing="ij")
        points = {n: g.reshape(-1) for n, g in zip(names, grid)}

        def one(point):
            f, draw = run(point, True)
            return jnp.exp(draw.enum_logq) * f

        return jnp.sum(jax.vmap(one)(points))

    def _with_scores(self, f, found: dict, scores: dict, repeated: bool, st):
        """Score terms of sites drawn for ``f``.  At the top level they go to ``scores``, where the
        surrogate pools every particle for the baseline; inside a continuation that runs more than
        once they enter at once, f + stop(f - b) (log q - stop(log q)), with a baseline of this draw
        alone (none here: greedy computes its own in ``Score.apply``)."""
        if not repeated:
            scores.update(found)
            return f
        for s, _ in found.values():  # no pooling baseline here (choose_estimators saw to it)
            f = f + jax.lax.stop_gradient(f) * (s - jax.lax.stop_gradient(s))
        return f

    def expect(self, ev, node: ir.Expect, local: dict):
        """The block's estimate, differentiated through a surrogate: the particles' mean, with
        each score-function site's term and baseline; or, for ``reduce = renyi`` (iwae, renyi),
        the bound 1/(1-a) (logsumexp((1-a) w) - log K), whose score terms take the bound itself
        as the reward of all particles (no baseline)."""
        if node.reduce == "renyi" and node.alpha == 0 and self._dreg(node):
            return self._dreg_bound(ev, node, local)
        f, scores, ok = self.particle_values(ev, node, local)
        if ok is not None:
            return self._over_accepted(node, f, scores, ok)
        if node.reduce == "renyi":
            a = node.alpha
            bound = (jax.nn.logsumexp((1.0 - a) * f) - math.log(node.particles)) / (1.0 - a)
            for s in scores.values():
                bound = bound + jax.lax.stop_gradient(bound) * jnp.sum(s - jax.lax.stop_gradient(s))
            return bound
        surrogate = f
        for name, s in scores.items():
            b = self.estimators[name].baseline(jax.lax.stop_gradient(f), name)
            surrogate = surrogate + jax.lax.stop_gradient(f - b) * (s - jax.lax.stop_gradient(s))
        return jnp.mean(surrogate)

    def _over_accepted(self, node: ir.Expect, f, scores: dict, ok):
        """The block's estimate over the n accepted particles only (``finite_particles``): the mean
        sum_{ok} surrogate_k / n, or the bound (logsumexp_{ok} (1-a) f_k - log n) / (1-a); a rejected
        particle's value stands in as the accepted ones' mean for the baselines.  The loop's
        estimator state (when it keeps one: ``solvers/vi_defaults``) counts the draws and the
        rejected ones, and keeps the last estimate, which stands in for a step with none accepted
        (whose gradient is NaN, and whose update the defaults' optimizer skips)."""
        from ..lib.estimators.score import EMA_STATE

        n = jnp.sum(ok)
        some = n > 0
        f = jnp.where(ok, f, 0.0)
        if node.reduce == "renyi":
            a = node.alpha
            value = (jax.nn.logsumexp(jnp.where(ok, (1.0 - a) * f, -jnp.inf))
                     - jnp.log(jnp.maximum(n, 1).astype(f.dtype))) / (1.0 - a)
            for s in scores.values():
                s = jnp.where(ok, s, 0.0)
                value = value + jax.lax.stop_gradient(value) * jnp.sum(s - jax.lax.stop_gradient(s))
        else:
            mean = jnp.sum(f) / jnp.maximum(n, 1)
            stand_in = jnp.where(ok, f, jax.lax.stop_gradient(mean))
            surrogate = f
            for name, s in scores.items():
                s = jnp.where(ok, s, 0.0)
                b = self.estimators[name].baseline(jax.lax.stop_gradient(stand_in), name)
                surrogate = surrogate + jax.lax.stop_gradient(stand_in - b) * (s - jax.lax.stop_gradient(s))
            value = jnp.sum(jnp.where(ok, surrogate, 0.0)) / jnp.maximum(n, 1)
        state = EMA_STATE.get()
        if state is None or REJECTED not in state["in"]:
            return jnp.where(some, value, jnp.nan)
        out, slot = state["out"], f"{LAST}{self._expects}"
        self._expects += 1
        for key, add in ((REJECTED, node.particles - n), (DRAWS, node.particles)):
            out[key] = out.get(key, state["in"][key]) + jnp.asarray(add, jnp.int32)
        last = state["in"].get(slot, jnp.zeros((), jnp.float32))
        value = jnp.where(some, value, jax.lax.stop_gradient(last))
        out[slot] = jax.lax.stop_gradient(value).astype(jnp.float32)
        return value

    # ---- DReG ----------------------------------------------------------------------------------
    def _dreg(self, node: ir.Expect) -> bool:
        """Whether the block draws a guide drawn wholly ``via dreg`` (choose_estimators checked
        that a guide naming dreg names it for every site)."""
        guide = self.ppl.program.guide
        if guide is None or not any(isinstance(st, ir.DrawGuide) for st in node.stmts):
            return False
        vias = list(self.ppl.guide_via.values()) or [guide.via]
        return bool(vias) and all(v is not None and v.value == "dreg" for v in vias)

    def _dreg_bound(self, ev, node: ir.Expect, local: dict):
        """iwae with doubly reparameterised gradients (Tucker et al., ICLR 2019, eq. 7).  Each
        particle's log weight w_k is evaluated twice with the same key: with the draw on its path
        (log q's parameters stopped, so only the path carries phi) and with the draw held constant
        (w0_k: only the model's parameters theta move it).  The surrogate

            stop(bound) + sum_k stop(w~_k^2) (w_k - stop w_k) + sum_k stop(w~_k - w~_k^2) (w0_k - stop w0_k)

        has the bound's value, the gradient sum_k w~_k^2 dw_k/dz_k dz_k/dphi in phi and the usual
        sum_k w~_k grad_theta w_k in theta."""
        def one(key):
            self._stop_path = False
            f = self._run(ev.child(), node, 0, dict(local), key, {}, False)
            self._stop_path = True
            f0 = self._run(ev.child(), node, 0, dict(local), key, {}, False)
            self._stop_path = False
            return f, f0

        keys = jax.random.split(self.next_key(), node.particles)
        f, f0 = jax.vmap(one)(keys)
        stop = jax.lax.stop_gradient
        bound = jax.nn.logsumexp(f) - math.log(node.particles)
        w = jax.nn.softmax(stop(f))
        return (stop(bound) + jnp.sum(stop(w * w) * (f - stop(f)))
                + jnp.sum(stop(w - w * w) * (f0 - stop(f0))))
