"""Spans for messages: the first word of a statement, a name inside it; 'not supported yet'."""

from __future__ import annotations

from ..errors import UnsupportedError
from ..source import Span


def keyword_span(span: Span | None, word: str) -> Span | None:
    """The span of the first word of a statement (for messages about whole blocks)."""
    if span is None:
        return None
    return Span(span.line, span.col, span.line, span.col + len(word), span.source)


def name_span(span: Span | None, name: str) -> Span | None:
    """The span of ``name`` where it first appears inside a statement's first line."""
    if span is None or span.source is None:
        return span
    line = span.source.line(span.line)
    at = line.find(name, span.col - 1)
    if at < 0:
        return keyword_span(span, "")
    return Span(span.line, at + 1, span.line, at + 1 + len(name), span.source)


def unsupported(what: str, span: Span | None, hint: str | None = None) -> UnsupportedError:
    return UnsupportedError(f"{what} not supported yet", span,
                            hint or "this version of gradlang parses it but cannot run it yet")
