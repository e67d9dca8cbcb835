"""Text -> AST: a Lark LALR parser over ``grammar/gradlang.lark``, and friendly syntax errors."""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path

from lark import Lark, Token
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from ..cache import parser_cache_file
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


def _lark() -> Lark:
    """The parser, built once a process.  Building the LALR tables costs ~0.2 s of CPU; Lark keeps
    them in a file of the cache directory (``gradlang.cache.parser_cache_file``) and later
    processes load them in 0.01 s."""
    text = _grammar_text()
    return _build(text, parser_cache_file(text))


@lru_cache(maxsize=1)
def _grammar_text() -> str:
    return grammar_path().read_text()


@lru_cache(maxsize=2)
def _build(text: str, cache_file: str | None) -> Lark:
    def make():
        return Lark(text, parser="lalr", postlex=NewlinesInBrackets(), propagate_positions=True,
                    maybe_placeholders=True)

    if cache_file is None:
        return make()
    # Lark's own ``cache=FILE`` is not used: its key hashes the ``cache`` option itself, so a file
    # written under a private name (below) would never be loaded under its own
    try:
        with open(cache_file, "rb") as f:
            return Lark.load(f)
    except FileNotFoundError:
        pass
    except Exception:  # noqa: BLE001 -- a damaged file: the tables are built again and it is rewritten
        pass
    parser = make()
    # written under a private name and renamed: another process starting at the same time never
    # reads half a file
    partial = f"{cache_file}.{os.getpid()}.tmp"
    try:
        with open(partial, "wb") as f:
            parser.save(f)
        os.replace(partial, cache_file)
    except OSError:  # only a cache: the next process builds the tables again
        pass
    return parser


_TOKEN_WORDS = {
    "_NL": "the end of the line", "NAME": "a name", "NUMBER": "a number", "STRING": "a string",
    "LPAR": "'('", "RPAR": "')'", "LSQB": "'['", "RSQB": "']'", "LBRACE": "'{'", "RBRACE": "'}'",
    "COMMA": "','", "COLON": "':'", "EQUAL": "'='", "TILDE": "'~'", "SEMICOLON": "';'",
    "ADD_OP": "'+' or '-'", "MUL_OP": "'*', '/', '//' or '@'", "COMP_OP": "a comparison",
    "$END": "the end of the file",
}
_EXPRESSION_START = {"NAME", "NUMBER", "STRING", "LPAR", "LSQB", "MINUS", "EXPECT", "NOT"}
_CONTINUATION = {"ADD_OP", "MUL_OP", "COMP_OP", "CIRCUMFLEX", "AND", "OR", "DOT", "LPAR", "LSQB"}
_STATEMENT_WORDS = {"use", "dim", "const", "data", "param", "fn", "extern", "prox", "let", "minimize",
                    "maximize", "report", "subject", "solve", "lower", "model", "guide", "target"}
_CLOSERS = {"(": ("RPAR", ")"), "[": ("RSQB", "]"), "{": ("RBRACE", "}")}


def _word(t: str) -> str:
    if t in _TOKEN_WORDS:
        return _TOKEN_WORDS[t]
    try:
        pattern = _lark().get_terminal(t).pattern
        return f"'{pattern.value}'" if pattern.type == "str" else t.lower()
    except KeyError:
        return t.lower()


def _describe(terminals) -> str:
    """What the parser would have accepted, in words: 'an expression' stands for everything that
    can start one; operators that could continue an expression are left out."""
    terminals = set(terminals)
    words = []
    if len(terminals & _EXPRESSION_START) >= 3:
        words.append("an expression")
        terminals -= _EXPRESSION_START
    terminals -= _CONTINUATION
    words += sorted({_word(t) for t in terminals})
    if not words:
        return "an operator"
    return ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1]


def _unclosed(text: str, upto: int) -> tuple[str, int] | None:
    """The innermost bracket still open at ``upto`` (skipping strings and comments)."""
    stack: list[tuple[str, int]] = []
    i = 0
    while i < min(upto, len(text)):
        ch = text[i]
        if ch == "#":
            while i < len(text) and text[i] != "\n":
                i += 1
            continue
        if ch == '"':
            i += 1
            while i < len(text) and text[i] not in '"\n':
                i += 2 if text[i] == "\\" else 1
        elif ch in "([{":
            stack.append((ch, i))
        elif ch in ")]}" and stack and "([{"[")]}".index(ch)] == stack[-1][0]:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def _position(source: Source, pos: int) -> tuple[int, int]:
    line = source.text.count("\n", 0, pos) + 1
    return line, pos - (source.text.rfind("\n", 0, pos) + 1) + 1


def _syntax_error(err: UnexpectedInput, source: Source) -> SyntaxError_:
    line, col = max(err.line, 1), max(err.column, 1)
    if isinstance(err, UnexpectedToken):
        tok = err.token
        expected = set(err.accepts or err.expected)
        at_end = tok.type == "$END"
        pos = len(source.text) if at_end else tok.start_pos
        if at_end:
            lines = source.text.splitlines() or [""]
            line, col = len(lines), len(lines[-1]) + 1
        what = "the end of the file" if at_end else ("the end of the line" if tok.type == "_NL" else f"'{tok}'")
        width = 1 if at_end or tok.type == "_NL" else max(len(str(tok)), 1)
        here = Span(line, col, line, col + width, source)
        opener = _unclosed(source.text, pos)
        if opener and _CLOSERS[opener[0]][0] in expected:
            o_line, o_col = _position(source, opener[1])
            closer = _CLOSERS[opener[0]][1]
            return SyntaxError_(f"this '{opener[0]}' is never closed", Span(o_line, o_col, o_line, o_col + 1, source),
                                f"add '{closer}' before {what} at {line}:{col}")
        if str(tok) in _STATEMENT_WORDS and ("_NL" in expected or "SEMICOLON" in expected):
            return SyntaxError_(f"unexpected '{tok}': one statement has ended and another begins", here,
                                "put each statement on its own line, or separate them with ';'")
        if tok.type in ("_NL", "$END") and len(expected & _EXPRESSION_START) >= 3:
            return SyntaxError_(f"expected an expression, found {what}", here,
                                "the statement is incomplete: write its value here (a number, a name, a call, ...)")
        return SyntaxError_(f"unexpected {what}", here, f"expected {_describe(expected)}")
    if isinstance(err, UnexpectedCharacters):
        char = source.text[err.pos_in_stream] if err.pos_in_stream < len(source.text) else "?"
        span = Span(line, col, line, col + 1, source)
        if char == "'":
            hint = "strings use double quotes"
        elif not char.isascii():
            hint = "names are ASCII letters, digits and '_'"
        else:
            hint = f"expected {_describe(err.allowed)}"
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
    try:
        return BuildAst(source).transform(tree)
    except VisitError as err:
        if isinstance(err.orig_exc, RecursionError):
            raise SyntaxError_("the program nests too deeply", None,
                               "split the long expression with let", file=source.name) from None
        raise


__all__ = ["parse", "grammar_path", "Token"]
