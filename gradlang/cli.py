"""The command line: check, run, compile, list, examples.  Exit codes: 0 ok, 1 user error, 2 bug."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from rich.console import Console
from rich.table import Table

from .errors import GradlangError, InternalError

EXIT_OK, EXIT_USER, EXIT_BUG = 0, 1, 2
err_console = Console(stderr=True, highlight=False)
console = Console(highlight=False)


def examples_dir() -> Path:
    here = Path(__file__).resolve().parent
    for candidate in (here / "examples", here.parent / "examples"):
        if candidate.is_dir():
            return candidate
    return here.parent / "examples"


def _parse_sets(pairs: list[str]) -> dict[str, str]:
    out = {}
    for pair in pairs:
        name, eq, value = pair.partition("=")
        if not eq or not name.strip():
            raise GradlangError(f"--set {pair}: expected name=value", None, "e.g. --set lam=0.3")
        out[name.strip()] = value.strip()
    return out


def cmd_check(args) -> int:
    from .api import compile as compile_program

    program = compile_program(args.file)
    n = len(program.ir.params)
    console.print(f"{args.file}: ok ({n} param{'s' if n != 1 else ''}, "
                  f"{len(program.ir.objectives)} objective{'s' if len(program.ir.objectives) != 1 else ''})")
    return EXIT_OK


def _progress(quiet: bool):
    if quiet:
        return None, None
    from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

    bar = Progress(TextColumn("[bold]step {task.completed}/{task.total}"), BarColumn(),
                   TextColumn("objective {task.fields[objective]}"), TextColumn("{task.fields[rate]} steps/s"),
                   TextColumn("ETA"), TimeRemainingColumn(), console=err_console, transient=False)
    state = {"task": None}

    def update(done, total, objective):
        import time

        if state["task"] is None:
            state["task"] = bar.add_task("fit", total=total, objective="", rate="")
            state["t0"], state["d0"] = time.perf_counter(), done
        elapsed = time.perf_counter() - state["t0"]
        rate = (done - state["d0"]) / elapsed if elapsed > 0 else 0
        bar.update(state["task"], completed=done, objective=f"{objective:.6g}",
                   rate=f"{rate:,.0f}" if rate else "…")

    return bar, update


def _summary(result, tol: float | None = None) -> None:
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
        table.add_row(f"report {k}", _short(v))
    for k, v in result.params.items():
        table.add_row(f"param {k}", _short(v) if not isinstance(v, (list, tuple)) else "(network weights)")
    for k, c in result.constraints.items():
        m = c.get("multiplier")
        table.add_row(f"constraint {k}", f"violation {c['violation']:.3g}" +
                      (f"  multiplier {_short(m)}" if m is not None else "  (projected)" if c["violation"] == 0 else ""))
    for k, s in result.posterior.items():
        table.add_row(f"posterior {k}", f"mean {_short(s['mean'])}  sd {_short(s['sd'])}")
    table.add_row("steps", f"{result.steps} in {result.seconds:.2f} s (seed {result.seed})")
    if result.converged:
        table.add_row("converged", f"converged at step {result.converged_at} (tol {tol:g})" if tol else
                      f"converged at step {result.converged_at}")
    console.print(table)


def _short(v) -> str:
    import numpy as np

    v = np.asarray(v)
    if v.ndim == 0:
        return f"{v.item():.6g}"
    flat = ", ".join(f"{x:.4g}" for x in v.ravel()[:6])
    return f"{list(v.shape)} [{flat}{', …' if v.size > 6 else ''}]"


def _npz_arrays(prefix: str, value) -> dict:
    """``value`` as npz entries: an array under ``prefix``; a tree of arrays (a flow guide's
    layers are lists of tuples of weights) one array per leaf, under ``prefix/i/...`` (list and
    tuple positions) or ``prefix/key/...`` (dict keys).  np.savez cannot store a ragged tree."""
    import numpy as np

    if isinstance(value, dict):
        return {k: v for key, item in value.items() for k, v in _npz_arrays(f"{prefix}/{key}", item).items()}
    if isinstance(value, (list, tuple)):
        return {k: v for i, item in enumerate(value) for k, v in _npz_arrays(f"{prefix}/{i}", item).items()}
    return {prefix: np.asarray(value)}


def write_out(result, path: str) -> None:
    import numpy as np

    out = Path(path)
    if out.suffix == ".npz":
        arrays = {k: v for name, value in result.params.items() for k, v in _npz_arrays(f"params/{name}", value).items()}
        arrays |= {k: v for name, value in result.reports.items()
                   for k, v in _npz_arrays(f"reports/{name}", value).items()}
        arrays |= {"objective": np.asarray(result.objective), "history/step": np.asarray(result.history["step"]),
                   "history/objective": np.asarray(result.history["objective"]),
                   "steps": np.asarray(result.steps), "seed": np.asarray(result.seed),
                   "converged_at": np.asarray(-1 if result.converged_at is None else result.converged_at)}
        np.savez(out, **arrays)
    else:
        out.write_text(json.dumps(result.to_json(), indent=1))


def cmd_run(args) -> int:
    from .api import Program
    from .backend.runtime import NonFiniteError
    from .pipeline import read_source

    program = Program(read_source(args.file), overrides=_parse_sets(args.set))
    if args.diagnose:
        return _diagnose(program, args)
    bar, update = _progress(args.quiet)
    options = {"data": args.data, "steps": args.steps, "seed": args.seed, "checkpoint": args.checkpoint,
               "resume": args.resume}
    try:
        if bar:
            with bar:
                result = program.fit(progress=update, **options)
        else:
            result = program.fit(**options)
    except NonFiniteError as err:
        if err.result is not None and args.out:
            write_out(err.result, args.out)
            report_error(f"wrote the last finite state to {args.out}")
        raise
    if not args.quiet:
        _summary(result, program.ir.solve.tol)
    _warn_infeasible(program, result)
    if args.out:
        write_out(result, args.out)
    return EXIT_OK


FEASIBLE = 1e-4  # the largest violation a run may end with and still be called feasible


def _warn_infeasible(program, result) -> None:
    """A warning, at each constraint's span, for every constraint the run ended violating; the
    exit code stays 0 (the result is still written)."""
    from .errors import Diagnostic

    for c in program.ir.constraints:
        worst = result.constraints.get(c.label, {}).get("violation", 0.0)
        if worst > FEASIBLE:
            hint = ("more steps, a decaying learning rate (adam(lr = cosine(0.01))), or a larger rho"
                    if program.ir.constrained is not None and program.ir.constrained.rest else None)
            report_error(Diagnostic(f"the run ended infeasible: constraint '{c.label}' is violated by {worst:.3g}",
                                    c.span, hint).render("warning"))


def _diagnose(program, args) -> int:
    from .diagnose import diagnose, recommend

    model, arrays = program.bind(args.data)
    if not model.stochastic:
        raise GradlangError("--diagnose compares gradient estimators: this objective is not a Monte-Carlo "
                            "estimate", program.ir.objectives[0].span, "it applies to expect, elbo, iwae, renyi")
    rows = diagnose(model, arrays, seed=args.seed or 0)
    params = list(rows[0]["stats"])
    table = Table(title="gradient variance at the initial parameters (500 draws)", header_style="bold")
    for col in ["site", "estimator"] + [f"var {p}" for p in params] + ["total"]:
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(row["site"], row["estimator"] + (" (biased)" if row["estimator"] in ("gumbel", "straight_through") else ""),
                      *[f"{row['stats'][p][0]:.3g}" for p in params], f"{row['total']:.3g}")
    console.print(table)
    for site, est in recommend(rows).items():
        console.print(f"recommendation for {site}: via {est}")
    return EXIT_OK


def cmd_compile(args) -> int:
    from .emit import emit

    console.print(emit(args.file, args.emit), markup=False, highlight=False, soft_wrap=True)
    return EXIT_OK


def cmd_list(args) -> int:
    """``gradlang list KIND``: the entries of one kind; ``gradlang list``: the kinds themselves."""
    from .listing import kinds, listing

    if args.kind is None:
        table = Table(show_header=True, header_style="bold", title="gradlang list KIND")
        for col, overflow in (("kind", "ignore"), ("for example", "fold"), ("entries", "ignore")):
            table.add_column(col, overflow=overflow, no_wrap=overflow == "ignore")
        for row in kinds():
            table.add_row(*row)
        console.print(table)
        return EXIT_OK
    rows = listing(args.kind)
    table = Table(show_header=True, header_style="bold")
    for col in ("name", "summary", "reference"):
        table.add_column(col, overflow="fold")
    for row in rows:
        table.add_row(*row)
    console.print(table)
    return EXIT_OK


def cmd_examples(args) -> int:
    folder = examples_dir()
    table = Table(show_header=True, header_style="bold", title=f"gallery in {folder}")
    table.add_column("example", no_wrap=True)
    table.add_column("what it is", overflow="fold")
    for path in sorted(folder.glob("*.grad")):
        first = path.read_text(encoding="utf-8").splitlines()[0].lstrip("# ").strip()
        table.add_row(path.name, first)
    console.print(table)
    console.print(f"run one with: gradlang run {folder / 'least_squares.grad'}", soft_wrap=True)
    return EXIT_OK


def report_error(text: str) -> None:
    """Errors go to stderr as plain text: never wrapped, so carets stay under their columns."""
    sys.stderr.write(text.rstrip("\n") + "\n")
    sys.stderr.flush()


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradlang", description="Compile and run gradlang (.grad) programs.")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser("check", help="parse and check a program")
    c.add_argument("file")
    c.set_defaults(fn=cmd_check)
    r = sub.add_parser("run", help="compile and solve a program")
    r.add_argument("file")
    r.add_argument("--data", help="an .npz or .csv file with the program's data")
    r.add_argument("--set", action="append", default=[], metavar="NAME=VALUE", help="override a const")
    r.add_argument("--steps", type=int, help="override the solve block's steps")
    r.add_argument("--seed", type=int, help="override the solve block's seed")
    r.add_argument("--out", help="write the result to R.json or R.npz")
    r.add_argument("--quiet", action="store_true", help="no progress bar or summary")
    r.add_argument("--checkpoint", metavar="DIR", help="write the solver's state to DIR as the run goes")
    r.add_argument("--resume", metavar="DIR", help="continue the run that wrote its checkpoint to DIR")
    r.add_argument("--diagnose", action="store_true",
                   help="compare the gradient variance of the estimators at the initial parameters")
    r.set_defaults(fn=cmd_run)
    m = sub.add_parser("compile", help="print a stage of compilation")
    m.add_argument("file")
    m.add_argument("--emit", default="ir", help="ast | ir | ir:PASS | jaxpr")
    m.set_defaults(fn=cmd_compile)
    li = sub.add_parser("list", help="list the choices of a kind (optimizers, schedules, ...), or the kinds")
    li.add_argument("kind", nargs="?", default=None,
                    help="optimizers | schedules | estimators | families | distributions | builtins | "
                         "domains | passes (none: list the kinds)")
    li.set_defaults(fn=cmd_list)
    e = sub.add_parser("examples", help="list the example gallery")
    e.set_defaults(fn=cmd_examples)
    return p


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if not getattr(args, "fn", None):
        parser().print_help()
        return EXIT_USER
    try:
        return args.fn(args)
    except InternalError as err:
        report_error(err.render())
        return EXIT_BUG
    except GradlangError as err:
        report_error(err.render())
        return EXIT_USER
    except KeyboardInterrupt:
        report_error("interrupted")
        return EXIT_USER
    except Exception as err:  # noqa: BLE001 - a bug: say so, never a bare traceback
        report_error(f"internal error: {type(err).__name__}: {err}\n"
                     "help: this is a bug in gradlang; please report it with the program")
        return EXIT_BUG


if __name__ == "__main__":
    sys.exit(main())
