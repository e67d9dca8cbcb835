"""The compiler pipeline, one readable function: parse -> check (builds the IR) -> passes."""

from __future__ import annotations

from pathlib import Path

from .check import check
from .errors import GradlangError, InternalError
from .ir import nodes as ir
from .passes import run_passes
from .source import Source, Span
from .syntax.parser import parse


def read_source(path_or_text: str | Path) -> Source:
    """A ``Source`` from a path to a .grad file, or from program text itself."""
    text = str(path_or_text)
    if isinstance(path_or_text, Path) or ("\n" not in text and text.endswith(".grad")):
        path = Path(path_or_text)
        if not path.exists():
            raise GradlangError(f"file not found: {path}", None, None)
        data = path.read_bytes()
        try:
            return Source(data.decode("utf-8"), str(path))
        except UnicodeDecodeError as err:
            raise not_utf8(path, data, err) from None
    return Source(text, "<string>")


def not_utf8(path: Path, data: bytes, err: UnicodeDecodeError) -> GradlangError:
    """A located error at the first byte that is not UTF-8: its line and column count the text
    before it as the lexer would (newlines normalised, no BOM), and the line is shown with the
    undecodable bytes as U+FFFD under the caret."""
    before = Source(data[:err.start].decode("utf-8"), str(path)).text
    line = before.count("\n") + 1
    col = len(before) - (before.rfind("\n") + 1) + 1
    shown = Source(data.decode("utf-8", errors="replace"), str(path))
    return GradlangError(f"the file is not UTF-8 text: byte 0x{data[err.start]:02x} cannot be decoded",
                         Span(line, col, line, col + 1, shown),
                         "save the file as UTF-8 (e.g. iconv -f latin1 -t utf-8 old.grad > new.grad)")


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
