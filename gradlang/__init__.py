"""gradlang: a small language for differentiable and probabilistic programs."""

from .aggregate import aggregate
from .api import Program, compile
from .backend.result import Result
from .backend.runtime import NonFiniteError
from .cache import use_compilation_cache
from .errors import GradlangError

__version__ = "0.1.0"
__all__ = ["aggregate", "compile", "Program", "Result", "GradlangError", "NonFiniteError",
           "use_compilation_cache", "__version__"]
