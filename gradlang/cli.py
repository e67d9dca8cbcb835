"""The command line: check, run, compile, list, examples.  Exit codes: 0 ok, 1 user error, 2 bug."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.table import Table

from .errors import GradlangError, InternalError
from .outfile import write_out
from .show import (
    console,
    diagnose_table,
    progress,
    summary,
    warn_infeasible,
)

EXIT_OK, EXIT_USER, EXIT_BUG = 0, 1, 2


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


def cmd_run(args) -> int:
    from .api import Program
    from .backend.runtime import NonFiniteError
    from .pipeline import read_source

    program = Program(read_source(args.file), overrides=_parse_sets(args.set))
    if args.diagnose:
        return _diagnose(program, args)
    bar, update = progress(args.quiet)
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
        summary(result, program.ir.solve.tol)
    warn_infeasible(program, result)
    if args.out:
        write_out(result, args.out)
    return EXIT_OK


def _diagnose(program, args) -> int:
    from .diagnose import diagnose, recommend

    model, arrays = program.bind(args.data)
    if not model.stochastic:
        raise GradlangError("--diagnose compares gradient estimators: this objective is not a Monte-Carlo "
                            "estimate", program.ir.objectives[0].span, "it applies to expect, elbo, iwae, renyi")
    rows = diagnose(model, arrays, seed=args.seed or 0)
    diagnose_table(rows, recommend(rows))
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


NO_CACHE_HELP = ("do not read or write the compilation cache (XLA executables and parser tables kept in "
                 "$GRADLANG_CACHE_DIR, else $XDG_CACHE_HOME/gradlang/xla, else ~/.cache/gradlang/xla; "
                 "GRADLANG_CACHE=0 does the same)")
COMPILING = ("check", "run", "compile")  # the commands that compile, and so use the cache


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="gradlang", description="Compile and run gradlang (.grad) programs.")
    p.add_argument("--no-cache", action="store_true", help=NO_CACHE_HELP)
    # the subcommands take it too (``gradlang run FILE --no-cache``); SUPPRESS keeps a subcommand
    # from resetting the flag given before it
    no_cache = argparse.ArgumentParser(add_help=False)
    no_cache.add_argument("--no-cache", action="store_true", default=argparse.SUPPRESS, help=NO_CACHE_HELP)
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    c = sub.add_parser("check", help="parse and check a program", parents=[no_cache])
    c.add_argument("file")
    c.set_defaults(fn=cmd_check)
    r = sub.add_parser("run", help="compile and solve a program", parents=[no_cache])
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
    m = sub.add_parser("compile", help="print a stage of compilation", parents=[no_cache])
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
    if args.command in COMPILING:
        from .cache import for_command_line

        for_command_line(args.no_cache)  # before the first compile; this process runs only gradlang
        if argv is None:  # the command itself (not a caller's main([...])): its imports' objects never
            import gc  # become garbage, so full collections need not walk them (gradlang.gc_pause)

            gc.freeze()
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
