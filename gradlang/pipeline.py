"""The compiler pipeline, one readable function: parse -> check (builds the IR) -> passes."""

from __future__ import annotations

from pathlib import Path

from .check import check
from .errors import GradlangError, InternalError
from .ir import nodes as ir
from .passes import run_passes
from .source import Source
from .syntax.parser import parse


def read_source(path_or_text: str | Path) -> Source:
    """A ``Source`` from a path to a .grad file, or from program text itself."""
    text = str(path_or_text)
    if isinstance(path_or_text, Path) or ("\n" not in text and text.endswith(".grad")):
        path = Path(path_or_text)
        if not path.exists():
            raise GradlangError(f"file not found: {path}", None, None)
        try:
            return Source(path.read_text(encoding="utf-8"), str(path))
        except UnicodeDecodeError as err:
            raise GradlangError(f"{path} is not UTF-8 text (byte {err.start})", None, None) from None
    return Source(text, "<string>")


def compile_source(source: Source, overrides: dict | None = None, until: str | None = None) -> ir.Program:
    """parse -> check -> passes.  Any failure that is not a ``GradlangError`` is a bug, reported
    as an ``InternalError`` (still a ``GradlangError``, so callers handle one type)."""
    try:
        return run_passes(check(parse(source), source, overrides), until)
    except GradlangError:
        raise
    except RecursionError:
        raise GradlangError("the program nests too deeply", None, "split long expressions with let",
                            file=source.name) from None
    except Exception as err:  # noqa: BLE001 - the boundary between user errors and bugs
        raise InternalError(f"{type(err).__name__}: {err}", None,
                            "this is a bug in gradlang; please report it with the program") from err
