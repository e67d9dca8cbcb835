"""Settings that converge for a variational fit that wrote none.

A program with a guide whose objective is a Monte-Carlo bound (elbo, iwae, renyi) and whose solve
block writes no ``optimizer``, ``steps`` or ``tol`` gets them chosen here, written into the IR
(``--emit ir:choose_vi_defaults``):

    vi defaults: start=laplace average=100 stop=elbo_settled(every=100, z=2) reject=nonfinite compile=fast  # chosen
    solve: optimizer=adam(lr=0.02) steps=10000 ...

- **start = laplace** (full_rank and mean_field guides): the guide starts at the Laplace
  approximation of the posterior (its mode by damped Newton), the end point of Pathfinder's path
  (Zhang et al., JMLR 2022), and is fitted in its frame, where every direction is in posterior
  sds (``backend/solvers/laplace_start.py``).  Other guides start where their family puts them.
- **adam(lr = 0.02)**: in the frame a step moves about 0.02 posterior sd.
- **average = 100**: the reported parameters are the exponential average of the iterates over
  about the last 100 steps (Polyak & Juditsky 1992; ``lib/optimizers/_averaged.py``).
- **stop = elbo_settled(every = 100, z = 2)**: Stan's ADVI rule made scale-free: stop when the
  mean ELBO of a window of 100 steps differs from the previous window's by less than 2 standard
  errors (``backend/solvers/elbo_settled.py``); ``steps = 10000`` is only the cap.
- **reject = nonfinite**: a particle (a draw z_k ~ q) whose log joint or gradient is not finite
  is dropped from the estimate and its gradient, which average over the accepted ones
  (``backend/finite_particles.py``); a step with none accepted is skipped (``optax.apply_if_finite``:
  the parameters keep their value).  The draws and the rejected ones are counted in the loop's
  estimator state (``Result.rejected_draws``), and a fit that rejected more than 1% says so in its
  verdict.  A model can be fine and still fail on a few draws in float32 (gp_pois_regr: a
  Cholesky whose jitter is below float32 precision fails on ~5% of draws).  Only here: the
  estimator is no longer the written one (an ELBO whose log joint is -inf on real draws is
  -inf, not the mean of the rest) and it has no forward-mode derivative; settings written by
  the user keep the estimator as written, and a non-finite draw stops the run with the last
  finite state.

- **compile = fast**: the rule ends most fits within a few hundred steps (the posteriordb ports at
  200-400), so the loop's compilation is most of a fit's time: its chunk is compiled with XLA's
  elemental emitter and no tree reductions (``backend/compile_options.fast_compile``), about half the compilation (kidiq:
  0.83 s instead of 1.40) for 1-4% a step on the posteriordb ports, which ``steps = 10000`` at
  20-150 us a step cannot make up.

Anything written stays exactly as written: one of optimizer, steps or tol written and the pass
chooses nothing (a user who sets the optimizer has chosen how to fit).  Nor does it choose for a
program with constraints, lower levels or several objectives.
"""

from __future__ import annotations

from dataclasses import replace

from ..ir import nodes as ir
from ..ir.plan import VIDefaults

LR = 0.02
MAX_STEPS = 10000
AVERAGE = 100
EVERY, Z = 100, 2.0
FRAMED = ("full_rank", "mean_field")  # the families with a Laplace frame (laplace_start.FAMILIES)
WRITTEN = ("optimizer", "steps", "tol")


def applies(program: ir.Program) -> bool:
    """A VI fit (a guide and a Monte-Carlo objective) that writes none of ``WRITTEN``."""
    from ..backend.build import is_stochastic

    solve = program.solve
    return (program.guide is not None and program.model is not None and is_stochastic(program)
            and len(program.objectives) == 1 and not program.constraints and not program.lowers
            and not any(f in getattr(solve, "spans", {}) for f in WRITTEN))


def choose_vi_defaults(program: ir.Program) -> ir.Program:
    if not applies(program):
        return program
    family = program.guide.family
    start = "laplace" if family is not None and family.value in FRAMED and not program.solve.batch else None
    optimizer = ir.ConfigValue("call", "adam", (), (("lr", ir.ConfigValue("number", LR)),))
    solve = replace(program.solve, optimizer=optimizer, steps=MAX_STEPS)
    return program.replace(solve=solve, vi_defaults=VIDefaults(start, AVERAGE, EVERY, Z, reject_nonfinite=True,
                                                               loop_compile="fast"))
