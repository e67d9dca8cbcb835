"""Variational inference on real posteriors: gradlang's default settings against NumPyro's SVI, both
measured against NUTS reference posteriors (issue 14).

The models: the gallery's ports of posteriordb models (examples/<model>.grad, each naming its
posteriordb posterior; the list is tests/posteriordb_models.PORTS).  The references: NumPyro NUTS,
4 chains x 5000 draws, R-hat < 1.01, on the same models written by hand from the Stan programs
(tests/fixtures/posteriordb_nuts.json, made by tests/fixtures/make_posteriordb_nuts.py; loaded by
tests.posteriordb_models.reference_posteriors).

Contenders, for every model and seed:

- ``gradlang default``: the port as a user writes it with no settings: its model, its guide
  (``full_rank`` or ``mean_field``) and its ``maximize elbo(particles = ...)``, the ``solve { ... }``
  block removed, so the optimizer, the steps and the stopping rule are the ones gradlang chooses.
  ``gradlang.compile(text).fit(seed=seed)``.
- ``gradlang as written`` (``--as-written``): the port with its own solve block.
- ``numpyro @ same``: NumPyro's ``AutoMultivariateNormal`` (init_to_feasible, as gradlang's
  ``full_rank``; init_scale 0.1, NumPyro's default) on the hand-written model, ``Trace_ELBO`` with the
  port's particles, ``optax.adam(0.01)``, for as many steps as gradlang's default run took.
  A NumPyro fit whose parameters went non-finite shows errors ``inf`` (NumPyro's SVI runs on).
- ``numpyro @ N`` (N = ``--numpyro-steps``, 20000): the same at the issue's step budget.
- ``numpyro reach``: the same at the first step count of ``--budgets`` (default 1000, 2000, 5000,
  10000, 20000, 50000) whose fit is at least as accurate as gradlang's default on that seed (both
  figures below, each floored at ``NOISE_FLOOR`` = 0.1, about the largest error that the 1000-draw
  summaries make alone on a model of 26 scalars); found on one trajectory of the largest budget
  (checked at each budget, untimed), then timed by a fresh run of that many steps.  ``>B`` where no
  budget reaches it.

Figures, per contender: ``steps``; ``wall s``: end to end, compile included, from the program text
(or a fresh SVI object) to the posterior means and sds of 1000 guide draws (gradlang's
``Result.posterior``; NumPyro's ``Predictive`` of the guide), in a warm process (for each model,
JAX's caches emptied, then each contender run once, untimed, at a few steps); ``mean err``: the largest over the model's scalars of
|mean - ref mean| / ref sd; ``sd err``: the largest of |sd / ref sd - 1|.  The issue's bar: mean err
<= 0.3 and sd err <= 0.3 on every seed.  gradlang's rows also show the Pareto k̂ of its fit
(``Result.diagnostics``, computed after the timing) and, where the defaults rejected draws (a
non-finite log joint or gradient), their share (``Result.rejected_draws / Result.draws``).  At
the end, per contender, the worst seed's figures per model and how many model-seed pairs pass
the bar.

The full run (the lead's, on a quiet machine)::

    python benchmarks/vi_posteriordb.py
    python benchmarks/vi_posteriordb.py --models kidiq --seeds 0 --steps 200   # a check that it runs

``--steps N`` fixes the step count of gradlang's runs and sets the NumPyro budgets to N (for quick
checks; the comparison proper lets gradlang choose).
"""

from __future__ import annotations

import argparse
import gc
import re
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import jax
import numpy as np
import optax
from numpyro.infer import SVI, Predictive, Trace_ELBO
from numpyro.infer.autoguide import AutoMultivariateNormal
from numpyro.infer.initialization import init_to_feasible

import gradlang
from tests.posteriordb_models import EXAMPLES, PORTS, load_data, posterior_gaps, reference_posteriors

BAR = 0.3            # the issue's: means within 0.3 reference sd, sds within 30%
NOISE_FLOOR = 0.1    # errors below this are within the noise of 1000-draw summaries
DRAWS = 1000         # guide draws behind each contender's means and sds
LR = 0.01


def without_solve(text: str) -> str:
    """The port's text with its ``solve { ... }`` block (one line or several) removed."""
    out, depth, skipping = [], 0, False
    for line in text.splitlines(keepends=True):
        if not skipping and re.match(r"\s*solve\s*\{", line):
            skipping, depth = True, 0
        if skipping:
            depth += line.count("{") - line.count("}")
            if depth <= 0:
                skipping = False
            continue
        out.append(line)
    return "".join(out)


def particles(text: str) -> int:
    m = re.search(r"elbo\(\s*particles\s*=\s*(\d+)", text)
    return int(m.group(1)) if m else 1


errors = posterior_gaps   # max |mean - ref mean| / ref sd and max |sd / ref sd - 1|; inf if diverged


class Gradlang:
    """A port compiled from its text (written next to a link to examples/data, so its loads resolve)."""

    def __init__(self, name: str, text: str, workdir: Path):
        self.path = workdir / f"{name}.grad"
        self.path.write_text(text)

    def run(self, seed: int, steps: int | None):
        t0 = time.perf_counter()
        result = gradlang.compile(self.path).fit(seed=seed, steps=steps)
        post = {k: (v["mean"], v["sd"]) for k, v in result.posterior.items()}
        wall = time.perf_counter() - t0
        return {"steps": result.steps, "wall": wall, "post": post, "khat": result.diagnostics.get("khat"),
                "rejected": result.rejected_draws / result.draws if result.rejected_draws is not None else None}


class NumPyroSVI:
    """AutoMultivariateNormal + Adam(0.01) on the hand-written model, as a NumPyro user writes it."""

    def __init__(self, name: str, n_particles: int):
        _, data_file, self.model = PORTS[name]
        self.data = load_data(data_file)
        self.n_particles = n_particles

    def _svi(self):
        guide = AutoMultivariateNormal(self.model, init_loc_fn=init_to_feasible)
        return guide, SVI(self.model, guide, optax.adam(LR), Trace_ELBO(num_particles=self.n_particles))

    def _moments(self, guide, params, seed: int):
        """Means and sds of DRAWS guide draws; None where the fit diverged (non-finite parameters:
        NumPyro's SVI does not stop on them, and its guide then refuses its scale_tril)."""
        if not all(bool(np.all(np.isfinite(v))) for v in jax.tree.leaves(params)):
            return None
        draws = Predictive(guide, params=params, num_samples=DRAWS)(jax.random.PRNGKey(10_000 + seed), self.data)
        return {k: (np.asarray(v).mean(0), np.asarray(v).std(0)) for k, v in draws.items()}

    def run(self, seed: int, steps: int):
        t0 = time.perf_counter()
        guide, svi = self._svi()
        res = svi.run(jax.random.PRNGKey(seed), steps, self.data, progress_bar=False)
        post = self._moments(guide, res.params, seed)
        return {"steps": steps, "wall": time.perf_counter() - t0, "post": post}

    def trajectory(self, seed: int, budgets: list[int], ref) -> dict[int, tuple[float, float]]:
        """Errors at each budget, along one run continued from budget to budget (untimed)."""
        guide, svi = self._svi()
        state, done, out = None, 0, {}
        for b in budgets:
            res = svi.run(jax.random.PRNGKey(seed), b - done, self.data, progress_bar=False, init_state=state)
            state, done = res.state, b
            out[b] = errors(self._moments(guide, svi.get_params(state), seed), ref)
        return out


def fmt(row: dict) -> str:
    khat = f"  k̂ {row['khat']:.2f}" if row.get("khat") is not None else ""
    if row.get("rejected"):  # the VI defaults' draws rejected for a non-finite log joint or gradient
        khat += f"  rejected {100 * row['rejected']:.1f}%"
    flag = "ok" if row["mean_err"] <= BAR and row["sd_err"] <= BAR else "--"
    return (f"{row['steps']:>7}  {row['wall']:7.1f}  {row['mean_err']:8.3f}  {row['sd_err']:7.3f}  {flag}{khat}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", nargs="*", default=sorted(PORTS), help=f"of {sorted(PORTS)}")
    ap.add_argument("--seeds", nargs="*", type=int, default=[0, 1, 2])
    ap.add_argument("--steps", type=int, help="fix gradlang's default step count and NumPyro's budgets (checks)")
    ap.add_argument("--numpyro-steps", type=int, default=20000)
    ap.add_argument("--budgets", default="1000,2000,5000,10000,20000,50000")
    ap.add_argument("--as-written", action="store_true", help="also run each port with its own solve block")
    args = ap.parse_args()
    unknown = set(args.models) - set(PORTS)
    if unknown:
        sys.exit(f"unknown models {sorted(unknown)}; known: {sorted(PORTS)}")
    budgets = [args.steps] if args.steps else sorted(int(b) for b in args.budgets.split(","))
    numpyro_steps = args.steps or args.numpyro_steps
    refs = reference_posteriors()

    print(f"jax {jax.__version__}, devices {jax.devices()}; gradlang default vs NumPyro AutoMultivariateNormal "
          f"+ Adam({LR}); errors against NUTS (tests/fixtures/posteriordb_nuts.json); bar {BAR}")
    print(f"{'model':<20} {'seed':>4}  {'contender':<22} {'steps':>7}  {'wall s':>7}  {'mean err':>8}  {'sd err':>7}")
    rows: list[dict] = []
    unreached: list[tuple[str, int]] = []   # (model, seed) where no NumPyro budget matched gradlang
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        (work / "data").symlink_to(EXAMPLES / "data")
        for name in args.models:
            text = (EXAMPLES / f"{name}.grad").read_text()
            ref = refs[name]
            contenders = {"gradlang default": Gradlang(name, without_solve(text), work)}
            if args.as_written:
                contenders["gradlang as written"] = Gradlang(name + "_written", text, work)
            npy = NumPyroSVI(name, particles(text))
            # each model from the same state: JAX's caches emptied (a process that keeps every
            # model's executables ran out of memory mappings on the full run: LLVM could not
            # allocate and the process crashed), then each contender run once, untimed, at a few
            # steps, which fills the caches of the small eager ops at this model's shapes
            jax.clear_caches()
            gc.collect()
            for contender in (*contenders.values(), npy):
                contender.run(0, 5)
            for seed in args.seeds:
                found = {}
                for label, g in contenders.items():
                    found[label] = g.run(seed, args.steps)
                same = found["gradlang default"]["steps"]
                found["numpyro @ same"] = npy.run(seed, same)
                if numpyro_steps != same:
                    found[f"numpyro @ {numpyro_steps}"] = npy.run(seed, numpyro_steps)
                target = [max(e, NOISE_FLOOR) for e in errors(found["gradlang default"]["post"], ref)]
                traj = npy.trajectory(seed, budgets, ref)
                reach = next((b for b in budgets if traj[b][0] <= target[0] and traj[b][1] <= target[1]), None)
                if reach is not None:
                    prior = next((r for r in found.values() if "khat" not in r and r["steps"] == reach), None)
                    found["numpyro reach"] = prior or npy.run(seed, reach)
                for label, r in found.items():
                    r["mean_err"], r["sd_err"] = errors(r["post"], ref)
                    rows.append({"model": name, "seed": seed, "contender": label, **r})
                    print(f"{name:<20} {seed:>4}  {label:<22} {fmt(r)}", flush=True)
                if reach is None:
                    unreached.append((name, seed))
                    print(f"{name:<20} {seed:>4}  {'numpyro reach':<22} {'>' + str(budgets[-1]):>7}", flush=True)

    print("\nWorst seed per model (max over seeds of each figure; wall: the mean over seeds)")
    labels = list(dict.fromkeys(r["contender"] for r in rows))
    for label in labels:
        mine = [r for r in rows if r["contender"] == label]
        passed = sum(r["mean_err"] <= BAR and r["sd_err"] <= BAR for r in mine)
        print(f"  {label}: {passed}/{len(mine)} model-seed pairs within the bar")
        for name in dict.fromkeys(r["model"] for r in mine):
            rs = [r for r in mine if r["model"] == name]
            print(f"    {name:<20} mean err {max(r['mean_err'] for r in rs):7.3f}  sd err "
                  f"{max(r['sd_err'] for r in rs):7.3f}  steps {'/'.join(str(r['steps']) for r in rs):<18} "
                  f"wall {np.mean([r['wall'] for r in rs]):6.1f} s")
    if unreached:
        print(f"  numpyro reach: no budget up to {budgets[-1]} steps as accurate as gradlang's default on "
              f"{len(unreached)}/{len(args.models) * len(args.seeds)} model-seed pairs: "
              + ", ".join(f"{m} {s}" for m, s in unreached))


if __name__ == "__main__":
    main()
