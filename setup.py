"""Build switches for the compiled hot path (metadata lives in pyproject.toml).

Environment switches:
  FASTFLOW_DEBUG=1     -O0 -g, FASTFLOW_DEBUG checks in the C code, line tracing
  FASTFLOW_ANNOTATE=1  write Cython's annotated HTML next to the sources
  FASTFLOW_COVERAGE=1  line tracing for coverage of the .pyx files
  FASTFLOW_OPT_CFLAGS  extra optimisation flags (e.g. "-march=native"); none by default
"""

from __future__ import annotations

import os
import shlex

from Cython.Build import cythonize
from Cython.Compiler import Options
from setuptools import Extension, setup


def _flag(name: str) -> bool:
    return os.environ.get(name, "") not in ("", "0", "false", "no")


DEBUG = _flag("FASTFLOW_DEBUG")
COVERAGE = _flag("FASTFLOW_COVERAGE")
ANNOTATE = _flag("FASTFLOW_ANNOTATE")

Options.warning_errors = True  # Cython warnings fail the build

directives = {
    "language_level": 3,
    "boundscheck": False,
    "wraparound": False,
    "initializedcheck": False,
    "cdivision": True,
    "embedsignature": True,
}
macros: list[tuple[str, str | None]] = []
cflags = ["-O2", "-Wall", "-Wsign-compare", "-Wno-unused-function"]
if DEBUG:
    cflags = ["-O0", "-g", "-Wall", "-Wsign-compare", "-Wno-unused-function"]
    macros.append(("FASTFLOW_DEBUG", "1"))
if DEBUG or COVERAGE:
    directives["linetrace"] = True
    macros.append(("CYTHON_TRACE", "1"))
    macros.append(("CYTHON_TRACE_NOGIL", "1"))
cflags += shlex.split(os.environ.get("FASTFLOW_OPT_CFLAGS", ""))

extensions = [
    Extension(
        "fastflow._hotpath",
        sources=["ext/_hotpath.pyx"],
        include_dirs=["ext"],
        define_macros=macros,
        extra_compile_args=cflags,
        depends=[os.path.join("ext", f) for f in sorted(os.listdir("ext")) if not f.endswith(".c")],
    )
]

setup(
    ext_modules=cythonize(
        extensions,
        include_path=["ext"],
        compiler_directives=directives,
        annotate=ANNOTATE or DEBUG,
        # Traced builds generate different C: keep it out of ext/, so that a
        # release build never reuses a debug build's C file (cythonize only
        # regenerates when the sources change, not when the directives do).
        build_dir="build/cython-traced" if (DEBUG or COVERAGE) else None,
        force=DEBUG or COVERAGE,
    ),
)
