"""Text -> AST: a Lark LALR parser over ``grammar/gradlang.lark``, and friendly syntax errors."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken

from ..errors import SyntaxError_
from ..source import Source, Span
from . import ast
from .build import BuildAst


def grammar_path() -> Path:
    """The grammar file: at the top of a source checkout, or inside the installed package."""
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "grammar" / "gradlang.lark", here.parent / "grammar" / "gradlang.lark"):
        if candidate.exists():
            return candidate
    raise FileNotFoundError("gradlang.lark not found")


class NewlinesInBrackets:
    """Post-lexer: newlines are ignored inside ``( )`` and ``[ ]`` but end statements in ``{ }``."""

    always_accept = ("_NL",)
    _open = {"LPAR": "(", "LSQB": "[", "LBRACE": "{"}
    _close = {"RPAR", "RSQB", "RBRACE"}

    def process(self, stream):
        depth: list[str] = []
        for tok in stream:
            if tok.type in self._open:
                depth.append(self._open[tok.type])
            elif tok.type in self._close and depth:
                depth.pop()
            elif tok.type == "_NL" and depth and depth[-1] in "([":
                continue
            yield tok


@lru_cache(maxsize=1)
def _lark() -> Lark:
    return Lark(grammar_path().read_text(), parser="lalr", postlex=NewlinesInBrackets(),
                propagate_positions=True, maybe_placeholders=True)


_TOKEN_WORDS = {
    "_NL": "a newline", "NAME": "a name", "NUMBER": "a number", "STRING": "a string",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "TILDE": "'~'", "SEMICOLON": "';'",
    "$END": "the end of the file",
}


def _describe(terminals) -> str:
    words = []
    for t in sorted(terminals):
        if t in _TOKEN_WORDS:
            words.append(_TOKEN_WORDS[t])
        else:
            try:
                pattern = _lark().get_terminal(t).pattern
                words.append(f"'{pattern.value}'" if pattern.type == "str" else t.lower())
            except KeyError:
                words.append(t.lower())
    words = sorted(set(words))
    if len(words) > 8:
        return ", ".join(words[:8]) + ", ..."
    return ", ".join(words)


def _syntax_error(err: UnexpectedInput, source: Source) -> SyntaxError_:
    line, col = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        if tok.type == "$END":
            lines = source.text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
            span = Span(line, col, line, col + 1, source)
            return SyntaxError_("unexpected end of file", span, f"expected {_describe(err.expected)}")
        width = max(len(str(tok)), 1) if tok.type != "_NL" else 1
        what = "a newline" if tok.type == "_NL" else f"'{tok}'"
        span = Span(line, col, line, col + width, source)
        hint = f"expected {_describe(err.accepts or err.expected)}"
        if tok.type == "_NL":
            hint += " before the end of the line"
        return SyntaxError_(f"unexpected {what}", span, hint)
    if isinstance(err, UnexpectedCharacters):
        char = source.text[err.pos_in_stream] if err.pos_in_stream < len(source.text) else "?"
        span = Span(line, col, line, col + 1, source)
        hint = "strings use double quotes" if char == "'" else f"expected {_describe(err.allowed)}"
        return SyntaxError_(f"unexpected character {char!r}", span, hint)
    span = Span(line, col, line, col + 1, source)
    return SyntaxError_("unexpected end of file", span, None)


def parse(text: str | Source, name: str = "<string>") -> ast.Program:
    """Parse gradlang source into an ``ast.Program``; raises ``SyntaxError_`` with a location."""
    source = text if isinstance(text, Source) else Source(text, name)
    if "\x00" in source.text:
        pos = source.text.index("\x00")
        line = source.text.count("\n", 0, pos) + 1
        col = pos - (source.text.rfind("\n", 0, pos) + 1) + 1
        raise SyntaxError_("unexpected NUL byte", Span(line, col, line, col + 1, source),
                           "the file must be text")
    try:
        tree = _lark().parse(source.text)
    except (UnexpectedToken, UnexpectedCharacters, UnexpectedEOF) as err:
        raise _syntax_error(err, source) from None
    return BuildAst(source).transform(tree)


__all__ = ["parse", "grammar_path", "Token"]
