"""Every sample site of a guide or an expect block gets its gradient estimator, written in the IR.

A site that names one keeps it, checked against its distribution; one that names none gets the
default, marked as chosen (``mu ~ normal(m, s) via reparam  # chosen``):

- reparameterisation where the distribution has it (Kingma & Welling, ICLR 2014);
- else the score function (Williams 1992) with a leave-one-out baseline when its block draws
  several particles (Kool, van Hoof & Welling 2019), a running-mean (ema) baseline for one;
- no baseline for a site drawn after an enum or mvd site or a greedy baseline in the same block:
  those run the rest of the block once per value, so there is no other draw of the site to pool
  and no running mean to keep per value.

A whole-guide family draws every latent by its path: ``guide = mean_field via reparam`` by default,
or as written, ``via stl`` / ``via dreg`` (Gaussian families only: their parameters are stopped in
log q); a guide drawn ``via dreg`` is so in every site (DReG reweighs the whole draw).
Every misfit is a located error here, so ``gradlang check`` reports it: an estimator that does not
fit the distribution (reparam on a discrete site, enum on an infinite support), mvd or a greedy
baseline in a guide (they rerun the objective at other values of the site, which a guide cannot),
a pooling baseline (rloo, ema) where nothing can be pooled, iwae/renyi over an enumerated guide,
and a guide drawn ``via dreg`` under ``renyi(alpha != 0)`` (DReG's identity holds for the iwae bound,
alpha = 0, and for elbo, where it is stl; the alpha-weighted bound would need weights w~^(1-alpha)
it does not have, so it would silently be a biased stl there).
"""

from __future__ import annotations

from dataclasses import replace

from ..check.config_value import config_args
from ..errors import TypeError_
from ..ir import nodes as ir
from ..ir.visit import map_children, walk
from ..lib.estimators import ESTIMATORS, Estimator
from ._program import map_expressions
from ._sites import site_distributions

REPARAM = ir.ConfigValue("word", "reparam")


def _score(baseline: str) -> ir.ConfigValue:
    return ir.ConfigValue("call", "score", (), (("baseline", ir.ConfigValue("word", baseline)),))


def build(via: ir.ConfigValue) -> Estimator:
    """The estimator ``via`` names, built from its settings (a located error if they are wrong)."""
    args, kwargs = config_args(via)
    try:
        return ESTIMATORS.get(via.value, via.span).value(*args, **kwargs)
    except (TypeError, ValueError) as err:
        raise TypeError_(f"wrong settings for {via.value}: {err}", via.span, None) from None


def reruns(est: Estimator) -> bool:
    """Whether the estimator runs the rest of its block more than once (enum, mvd, greedy)."""
    return type(est).apply is not Estimator.apply and (est.name != "score" or est.baseline_kind == "greedy")


def pools(est: Estimator) -> str | None:
    kind = getattr(est, "baseline_kind", None)
    return kind if kind in ("rloo", "ema") else None


class Chooser:
    """Decides the sites of one block in order; ``nested`` once a site reruns the rest."""

    def __init__(self, dists: dict, block: str, particles: int, nested: bool, in_guide: bool):
        self.dists, self.block, self.particles = dists, block, particles
        self.nested, self.in_guide = nested, in_guide

    def site(self, st: ir.Sample) -> ir.Sample:
        if st.family is not None:  # a per-site family (mean_field): a reparameterised Gaussian
            return st if st.via is not None else replace(st, via=REPARAM, chosen=True)
        dist = self.dists.get((self.block, st.name))
        if st.via is None:
            via = self.default(dist)
            out = replace(st, via=replace(via, span=st.span), chosen=True)
        else:
            out = st
        est = build(out.via)
        self.check(est, dist, out)
        self.nested = self.nested or reruns(est)
        return out

    def default(self, dist) -> ir.ConfigValue:
        if dist is None or dist.has_rsample:
            return REPARAM
        if self.nested:
            return _score("none")
        return _score("rloo" if self.particles > 1 else "ema")

    def check(self, est: Estimator, dist, st: ir.Sample) -> None:
        span = st.via.span if not st.chosen else st.span
        why = est.check(dist) if dist is not None else None
        if why:
            raise TypeError_(f"site '{st.name}': {why}", span,
                             "use score(baseline = rloo) for a discrete site (or enum for a finite support)")
        draws_alone = type(est).draw is not Estimator.draw or est.name == "enum"  # a guide sums enum sites
        if self.in_guide and (not draws_alone or getattr(est, "baseline_kind", None) == "greedy"):
            what = "score(baseline = greedy)" if est.name == "score" else est.name
            raise TypeError_(f"site '{st.name}': {what} reruns the objective at other values of the site, "
                             "which works in expect blocks, not in a guide", span,
                             "in a guide use reparam, enum, or score with baseline none, rloo or ema")
        if self.nested and pools(est):
            where = "in a guide with an enumerated site" if self.in_guide else "after an enum or mvd site"
            raise TypeError_(f"site '{st.name}': score(baseline = {pools(est)}) {where}, whose continuation "
                             "runs once per value, has no other draws to pool", span,
                             "use score(baseline = none) or score(baseline = greedy) there, or draw the site first")


PATHWISE = ("reparam", "stl", "dreg")


def _check_family_via(guide: ir.GuideIR) -> None:
    """A whole-guide family draws by its path: reparam, stl or dreg; stl and dreg stop the
    family's parameters in log q, which a flow (its weights inside its transforms) does not allow."""
    via = guide.via
    if via.value not in PATHWISE:
        raise TypeError_(f"a whole-guide family draws by reparameterisation; '{via.value}' does not", via.span,
                         "use reparam, stl or dreg")
    build(via)
    if via.value != "reparam" and guide.family.value in ("flow", "delta"):
        raise TypeError_(f"{via.value} evaluates log q with the guide's parameters stopped, which a "
                         f"{guide.family.value} guide does not support", via.span,
                         "use mean_field, low_rank or full_rank with stl/dreg, or reparam")


def _check_dreg(guide: ir.GuideIR) -> None:
    """DReG reweighs the whole guide's path gradients: every site or none."""
    sites = [st for st in guide.stmts if isinstance(st, ir.Sample)]
    dreg = [st for st in sites if st.via.value == "dreg"]
    other = next((st for st in sites if st.via.value != "dreg"), None)
    if dreg and other is not None:
        raise TypeError_(f"site '{dreg[0].name}' is drawn via dreg and '{other.name}' via {other.via.value}: "
                         "dreg weighs the whole guide's draw", dreg[0].via.span, "draw every guide site via dreg")


def _check_dreg_bound(guide: ir.GuideIR, expects: list[ir.Expect]) -> None:
    """``via dreg`` is exact for iwae (renyi with alpha = 0) and is stl under elbo; under renyi
    with alpha != 0 it has no derivation (Tucker et al. 2019 treat the iwae bound only)."""
    vias = [st.via for st in guide.stmts if isinstance(st, ir.Sample)] if guide.family is None else [guide.via]
    dreg = next((v for v in vias if v is not None and v.value == "dreg"), None)
    if dreg is None:
        return
    bound = next((n for n in expects if n.reduce == "renyi" and n.alpha != 0
                  and any(isinstance(st, ir.DrawGuide) for st in n.stmts)), None)
    if bound is not None:
        raise TypeError_(f"dreg is derived for iwae (renyi with alpha = 0) and elbo; this guide is "
                         f"fitted by renyi with alpha = {bound.alpha:g} (at {bound.span})", dreg.span,
                         "use via reparam or via stl with renyi, or iwae with via dreg")


def _expects(program: ir.Program) -> list[ir.Expect]:
    return [n for o in program.objectives for n in walk(o.value) if isinstance(n, ir.Expect)]


def _guide_context(program: ir.Program, dists: dict) -> tuple[int, bool]:
    """The particles of the blocks that draw the guide (a pooling baseline needs several in each)
    and whether the guide is drawn where the rest reruns: it enumerates a site itself, or it is
    drawn after a rerunning site of an expect block."""
    particles, nested = [], False
    for node in _expects(program):
        chooser = Chooser(dists, f"expect@{id(node)}", node.particles, False, False)
        for st in node.stmts:
            if isinstance(st, ir.DrawGuide):
                particles.append(node.particles)
                nested = nested or chooser.nested
            elif isinstance(st, ir.Sample) and st.via is not None and st.family is None:
                chooser.nested = chooser.nested or reruns(build(st.via))
    enumerates = any(isinstance(st, ir.Sample) and st.via is not None and st.via.value == "enum"
                     for st in program.guide.stmts)
    return (min(particles) if particles else 1), nested or enumerates


def choose_estimators(program: ir.Program) -> ir.Program:
    expects = _expects(program)
    blocks: dict[str, tuple] = {f"expect@{id(n)}": n.stmts for n in expects}
    guide = program.guide
    if guide is not None and guide.family is None:
        declared = {s.name: s.shape for s in program.model.stmts if isinstance(s, ir.Sample)}
        blocks["guide"] = tuple(replace(st, shape=declared.get(st.name)) if isinstance(st, ir.Sample) else st
                                for st in guide.stmts)
    dists = site_distributions(program, blocks) if blocks else {}

    if guide is not None and guide.family is not None:
        guide = replace(guide, via=guide.via or REPARAM)
        _check_family_via(guide)
        _check_dreg_bound(guide, expects)
    elif guide is not None:
        particles, nested = _guide_context(program, dists)
        chooser = Chooser(dists, "guide", particles, nested, True)
        guide = replace(guide, stmts=tuple(chooser.site(st) if isinstance(st, ir.Sample) else st
                                           for st in guide.stmts))
        _check_dreg(guide)
        _check_dreg_bound(guide, expects)
        enumerated = next((st.name for st in guide.stmts if isinstance(st, ir.Sample) and st.via.value == "enum"),
                          None)
        bound = next((n for n in expects if n.reduce != "mean" and
                      any(isinstance(st, ir.DrawGuide) for st in n.stmts)), None)
        if enumerated and bound is not None:
            kind = "iwae" if bound.alpha == 0 else "renyi"
            raise TypeError_(f"{kind} weighs sampled draws of the guide, and this guide enumerates "
                             f"'{enumerated}'", bound.span, "use elbo with an enumerated guide, or draw the site via score")

    def expect(node: ir.Expect) -> ir.Expect:
        chooser = Chooser(dists, f"expect@{id(node)}", node.particles, False, False)
        stmts = tuple(chooser.site(st) if isinstance(st, ir.Sample) else st for st in node.stmts)
        return replace(node, stmts=stmts)

    def visit(e):
        # parents first: each Expect is decided as the node the distributions were found for
        return map_children(expect(e) if isinstance(e, ir.Expect) else e, visit)

    return map_expressions(program.replace(guide=guide), visit)
