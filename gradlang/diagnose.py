"""``gradlang run F --diagnose``: gradient variance under each applicable estimator.

At the initial parameters, the gradient of the objective is drawn ``draws`` times (fresh keys) under
the program's own estimators and, for each sample site, under every other estimator that fits it.
The table shows, per parameter, the total variance of the gradient (the sum over coordinates) and
the norm of its mean; the recommendation is the unbiased choice with the least total variance.
"""

from __future__ import annotations

from dataclasses import replace

import jax
import jax.numpy as jnp
import numpy as np

from .backend.build import build
from .errors import GradlangError
from .ir import nodes as ir
from .ir.visit import map_children, walk
from .lib.estimators import ESTIMATORS
from .passes._program import map_expressions
from .passes.choose_estimators import choose_estimators

BIASED = {"gumbel", "straight_through"}


def sample_sites(program: ir.Program) -> list[str]:
    """Latent sample sites whose estimator can be chosen: the guide's and those of expect blocks."""
    names = [s.name for s in (program.guide.stmts if program.guide else ()) if isinstance(s, ir.Sample)]
    for o in program.objectives:
        names += [st.name for n in walk(o.value) if isinstance(n, ir.Expect) for st in n.stmts
                  if isinstance(st, ir.Sample)]
    return list(dict.fromkeys(names))


def with_estimator(program: ir.Program, site: str, setting: ir.ConfigValue) -> ir.Program:
    """The plan with ``site`` drawn by ``setting`` and the defaults of the other sites chosen anew
    (a site after an enum or mvd site, say, has another default): the estimators the pass
    chose are cleared, ``site`` is set, and choose_estimators decides and checks again."""
    def reset(st):
        if not isinstance(st, ir.Sample):
            return st
        if st.name == site:
            return replace(st, via=setting, chosen=False)
        return replace(st, via=None, chosen=False) if st.chosen else st

    def visit(e):
        if isinstance(e, ir.Expect):
            e = replace(e, stmts=tuple(reset(st) for st in e.stmts))
        return map_children(e, visit)

    guide = program.guide
    if guide is not None:
        guide = replace(guide, stmts=tuple(reset(st) for st in guide.stmts))
    return choose_estimators(map_expressions(program.replace(guide=guide), visit))


def candidates() -> list[tuple[str, ir.ConfigValue]]:
    """Every registered estimator with its default settings, and the score function with each
    of its baselines."""
    out = []
    for name in ESTIMATORS.names():
        if name == "score":
            from .lib.estimators.score import BASELINES

            for b in BASELINES:
                out.append((f"score({b})", ir.ConfigValue("call", "score", (),
                                                          (("baseline", ir.ConfigValue("word", b)),))))
        else:
            out.append((name, ir.ConfigValue("call", name)))
    return out


def gradient_stats(model, u, data, draws: int, seed: int) -> dict[str, tuple[float, float]]:
    keys = jax.random.split(jax.random.PRNGKey(seed), draws)
    grads = jax.jit(jax.vmap(jax.grad(model.loss), in_axes=(None, None, 0)))(u, data, keys)
    out = {}
    for name, g in grads.items():
        g = np.asarray(g, np.float64).reshape(draws, -1)
        out[name] = (float(g.var(0).sum()), float(np.linalg.norm(g.mean(0))))
    return out


def diagnose(model, data: dict, seed: int = 0, draws: int = 500) -> list[dict]:
    """Rows: {site, estimator, per-param (variance, mean norm), total variance}; the first row is the
    program as written."""
    data = {k: jnp.asarray(v) for k, v in data.items()}
    u = model.init(jax.random.PRNGKey(seed), data)
    rows = [{"site": "(as written)", "estimator": "", "stats": gradient_stats(model, u, data, draws, seed)}]
    for site in sample_sites(model.program):
        for name, setting in candidates():
            try:
                other = build(with_estimator(model.program, site, setting), model.dims, data, model.program.solve.batch)
                stats = gradient_stats(other, u, data, draws, seed)
            except GradlangError:
                continue  # this estimator does not fit the site (or its draws do not fit the program)
            rows.append({"site": site, "estimator": name, "stats": stats})
    for row in rows:
        row["total"] = sum(v for v, _ in row["stats"].values())
    return rows


def recommend(rows: list[dict]) -> dict[str, str]:
    best = {}
    for row in rows[1:]:
        if row["estimator"].split("(")[0] in BIASED or not np.isfinite(row["total"]):
            continue
        if row["site"] not in best or row["total"] < best[row["site"]]["total"]:
            best[row["site"]] = row
    return {site: row["estimator"] for site, row in best.items()}
