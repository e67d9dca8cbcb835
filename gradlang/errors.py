"""The one error hierarchy of gradlang and its renderer.

Every user-facing error is a ``GradlangError`` carrying one or more ``Diagnostic``\\s; ``render()``
prints them as ``file:line:col: error: message``, the source line, carets under the span, and a help
line.  An ``InternalError`` is a bug in gradlang and says so.
"""

from __future__ import annotations

import difflib
from dataclasses import dataclass, field

from .source import Span


@dataclass
class Diagnostic:
    message: str
    span: Span | None = None
    help: str | None = None
    extra_spans: list[Span] = field(default_factory=list)
    file: str | None = None  # for whole-program errors, which have no span

    def render(self, kind: str = "error") -> str:
        where = str(self.span) if self.span else self.file
        head = f"{where}: {kind}: {self.message}" if where else f"{kind}: {self.message}"
        out = [head]
        spans = ([self.span] if self.span else []) + self.extra_spans
        if self.span is not None and self.span.source is not None:
            for line_no in sorted({s.line for s in spans}):
                text = self.span.source.line(line_no)
                carets = [" "] * (len(text) + 1)
                for s in spans:
                    if s.line != line_no:
                        continue
                    end = s.end_col if s.end_line == s.line else len(text) + 1
                    for c in range(s.col, max(end, s.col + 1)):
                        if c - 1 < len(carets):
                            carets[c - 1] = "^"
                width = len(str(line_no))
                out.append(" " * width + " |")
                out.append(f"{line_no} | {text}")
                out.append(" " * width + " | " + "".join(carets).rstrip())
        if self.help:
            out.append(f"help: {self.help}")
        return "\n".join(out)


class GradlangError(Exception):
    """Base of every error gradlang reports to a user."""

    kind = "error"

    def __init__(self, message: str | list[Diagnostic], span: Span | None = None, help: str | None = None,
                 file: str | None = None):
        if isinstance(message, list):
            self.diagnostics = message
        else:
            self.diagnostics = [Diagnostic(message, span, help, file=file)]
        super().__init__(self.render())

    @property
    def span(self) -> Span | None:
        return self.diagnostics[0].span

    @property
    def message(self) -> str:
        return self.diagnostics[0].message

    def render(self) -> str:
        return "\n\n".join(d.render(self.kind) for d in self.diagnostics)


class SyntaxError_(GradlangError):
    """The text does not follow the grammar."""


class NameError_(GradlangError):
    """An unknown or duplicate name."""


class TypeError_(GradlangError):
    """Shapes, element types or domains do not fit."""


class ConfigError(GradlangError):
    """A ``solve`` field, a choice word, or its arguments are wrong."""


class DataError(GradlangError):
    """Supplied data is missing or does not match its declaration."""


class UnsupportedError(GradlangError):
    """A construct of the language that this version parses but cannot run yet."""


class RuntimeError_(GradlangError):
    """The program failed while running (a non-finite objective, say)."""


class InternalError(GradlangError):
    """A bug in gradlang, not in the user's program."""

    kind = "internal error"


def collect(errors: list[GradlangError]) -> None:
    """Raise all errors of a stage at once (the first one's class), or nothing."""
    if errors:
        diagnostics = [d for e in errors for d in e.diagnostics]
        raise type(errors[0])(diagnostics)


def did_you_mean(name: str, known) -> str | None:
    """The nearest known name: a close spelling, else the one known name that ``name`` begins."""
    known = list(known)
    close = [k for k in known if k.lower() == name.lower() and k != name][:1]
    close = close or difflib.get_close_matches(name, known, n=1, cutoff=0.6)
    if not close and len(name) >= 3:
        close = [k for k in known if k.startswith(name)][:1] if sum(k.startswith(name) for k in known) == 1 else []
    return f"did you mean '{close[0]}'?" if close else None


def known_list(known) -> str:
    return "known: " + ", ".join(sorted(known))


def choice_help(name: str, known) -> str:
    """Help for an unknown choice word: the nearest known name, then all of them."""
    hint = did_you_mean(name, known)
    return f"{hint} {known_list(known)}" if hint else known_list(known)
