"""What a run shows on the terminal: the progress bar, the summary table, warnings at the spans of
constraints a run ended violating, the estimator-variance table of ``--diagnose``."""

from __future__ import annotations

from rich.console import Console
from rich.table import Table

err_console = Console(stderr=True, highlight=False)
console = Console(highlight=False)


def progress(quiet: bool):
    if quiet:
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]step {task.completed}/{task.total}"), BarColumn(),
                   TextColumn("objective {task.fields[objective]}"), TextColumn("{task.fields[rate]} steps/s"),
                   TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=False)
    state = {"task": None}

    def update(done, total, objective, objectives=None):
        import time

        if state["task"] is None:
            state["task"] = bar.add_task("fit", total=total, objective="", rate="")
            state["t0"], state["d0"] = time.perf_counter(), done
        elapsed = time.perf_counter() - state["t0"]
        rate = (done - state["d0"]) / elapsed if elapsed > 0 else 0
        named = f" ({', '.join(f'{k} {v:.4g}' for k, v in objectives.items())})" if objectives else ""
        bar.update(state["task"], completed=done, objective=f"{objective:.6g}{named}",
                   rate=f"{rate:,.0f}" if rate else "…")

    return bar, update


def summary(result, tol: float | None = None) -> None:
    table = Table(title=None, show_header=True, header_style="bold")
    table.add_column("quantity")
    table.add_column("value", overflow="fold")
    se = result.objective_se
    table.add_row("objective", f"{result.objective:.8g}" + (f" ± {se:.2g} (standard error at the final "
                                                             f"parameters, full data)" if se is not None else ""))
    if len(result.objectives) > 1:
        for k, v in result.objectives.items():
            table.add_row(f"objective {k}", f"{v:.8g}")
    for k, v in result.reports.items():
        table.add_row(f"report {k}", short(v))
    for k, v in result.params.items():
        table.add_row(f"param {k}", short(v) if not isinstance(v, (list, tuple)) else "(network weights)")
    if result.conflicts:
        pair, cos = min(result.conflicts.items(), key=lambda kv: kv[1])
        a, b = pair.split("|")
        table.add_row("most conflicting", f"{a} and {b}: cosine of their gradients {cos:.3g}"
                      + ("  (they pull apart)" if cos < 0 else ""))
    for k, c in result.constraints.items():
        m = c.get("multiplier")
        table.add_row(f"constraint {k}", f"violation {c['violation']:.3g}" +
                      (f"  multiplier {short(m)}" if m is not None else "  (projected)" if c["violation"] == 0 else ""))
    for k, s in result.posterior.items():
        table.add_row(f"posterior {k}", f"mean {short(s['mean'])}  sd {short(s['sd'])}")
    if result.diagnostics:
        table.add_row("Pareto k̂", f"{result.diagnostics['khat']:.2f}: {result.diagnostics['verdict']}")
    if result.rejected_draws:
        table.add_row("rejected draws", f"{result.rejected_draws} of {result.draws} "
                      f"({100 * result.rejected_draws / result.draws:.2g}%): non-finite log joint or gradient; "
                      "the estimates averaged over the rest")
    table.add_row("steps", f"{result.steps} in {result.seconds:.2f} s (seed {result.seed})")
    if result.converged:
        table.add_row("converged", f"converged at step {result.converged_at} (tol {tol:g})" if tol else
                      f"converged at step {result.converged_at}")
    console.print(table)


def short(v) -> str:
    import numpy as np

    v = np.asarray(v)
    if v.ndim == 0:
        return f"{v.item():.6g}"
    flat = ", ".join(f"{x:.4g}" for x in v.ravel()[:6])
    return f"{list(v.shape)} [{flat}{', …' if v.size > 6 else ''}]"


FEASIBLE = 1e-4  # the largest violation a run may end with and still be called feasible


def warn_infeasible(program, result) -> None:
    """A warning, at each constraint's span, for every constraint the run ended violating; the
    exit code stays 0 (the result is still written)."""
    from .errors import Diagnostic

    for c in program.ir.constraints:
        worst = result.constraints.get(c.label, {}).get("violation", 0.0)
        if worst > FEASIBLE:
            hint = ("more steps, a decaying learning rate (adam(lr = cosine(0.01))), or a larger rho"
                    if program.ir.constrained is not None and program.ir.constrained.rest else None)
            _report(Diagnostic(f"the run ended infeasible: constraint '{c.label}' is violated by {worst:.3g}",
                                    c.span, hint).render("warning"))




def _report(text: str) -> None:
    import sys

    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def diagnose_table(rows: list, recommendations: dict) -> None:
    """Per row (the program as written, then each site under each estimator that fits it): the
    gradient variance of each parameter and their total; then the recommendation per site."""
    params = list(rows[0]["stats"])
    table = Table(title="gradient variance at the initial parameters (500 draws)", header_style="bold")
    for col in ["site", "estimator"] + [f"var {p}" for p in params] + ["total"]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["site"], row["estimator"] + (" (biased)" if row["estimator"] in ("gumbel", "straight_through") else ""),
                      *[f"{row['stats'][p][0]:.3g}" for p in params], f"{row['total']:.3g}")
    console.print(table)
    for site, est in recommendations.items():
        console.print(f"recommendation for {site}: via {est}")
