"""``use`` statements: a library of the standard library (``use losses``) or a file relative to the
program (``use "lib/models.grad"``) is replaced by its declarations (fn, const, dim, prox)."""

from __future__ import annotations

from pathlib import Path

from ..errors import NameError_, TypeError_, did_you_mean, known_list
from ..source import Source
from ..syntax import ast
from ..syntax.parser import parse


def stdlib_dir() -> Path:
    here = Path(__file__).resolve().parent.parent
    for candidate in (here / "stdlib", here.parent / "stdlib"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("stdlib not found")


def expand_uses(stmts, source: Source, seen: set) -> list:
    """Replace each ``use`` by the declarations of the file it names (fn, const, dim, use)."""
    out = []
    for s in stmts:
        if not isinstance(s, ast.Use):
            out.append(s)
            continue
        if s.is_path:
            base = Path(source.name).parent if source.name != "<string>" else Path.cwd()
            path = (base / s.target).resolve()
        else:
            path = stdlib_dir() / f"{s.target}.grad"
        if not path.exists():
            known = sorted(p.stem for p in stdlib_dir().glob("*.grad"))
            hint = (did_you_mean(s.target, known) or known_list(known)) if not s.is_path else \
                f"looked for {path}"
            raise NameError_(f"cannot find {'file' if s.is_path else 'library'} '{s.target}'", s.span, hint)
        if path in seen:
            continue
        seen.add(path)
        try:
            text = path.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise NameError_(f"cannot read '{s.target}': {err}", s.span, None) from None
        used = Source(text, str(path))
        for u in expand_uses(parse(used).stmts, used, seen):
            if not isinstance(u, (ast.Fn, ast.Const, ast.Dim, ast.Prox)):
                raise TypeError_("a used file may declare only fn, const, dim and prox", u.span,
                                 f"it is used from {s.span}")
            out.append(u)
    return out
