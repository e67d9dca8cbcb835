"""Source text and spans: where every node of a program came from."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Source:
    """A program's text and the name it is reported under (a path or ``<string>``)."""

    text: str
    name: str = "<string>"

    def __post_init__(self):
        # one newline convention for the lexer and for the lines shown under errors; no BOM
        text = self.text.lstrip("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
        object.__setattr__(self, "text", text)

    def line(self, number: int) -> str:
        lines = self.text.splitlines()
        return lines[number - 1] if 1 <= number <= len(lines) else ""


@dataclass(frozen=True)
class Span:
    """A region of a source: 1-based line/col of its start and end (end exclusive)."""

    line: int
    col: int
    end_line: int
    end_col: int
    source: Source | None = field(default=None, compare=False, repr=False)

    def __str__(self) -> str:
        name = self.source.name if self.source else "<string>"
        return f"{name}:{self.line}:{self.col}"

    def merge(self, other: "Span | None") -> "Span":
        if other is None:
            return self
        return Span(self.line, self.col, other.end_line, other.end_col, self.source)
