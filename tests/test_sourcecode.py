"""Lint and types run as part of the suite (asyncpg/uvloop style), and the docs' links resolve."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", *args], cwd=ROOT, capture_output=True, text=True, timeout=300)


def test_ruff() -> None:
    result = _run("ruff", "check", "src", "tests", "bench")
    assert result.returncode == 0, result.stdout + result.stderr


def test_mypy_strict() -> None:
    result = _run("mypy", "--strict", "src/fastflow")
    assert result.returncode == 0, result.stdout + result.stderr


DOCS = sorted([ROOT / "README.md", *(ROOT / "docs").glob("*.md")])
_FENCED = re.compile(r"^(```|~~~).*?^\1", re.S | re.M)
_INLINE_CODE = re.compile(r"`[^`\n]*`")
_LINK = re.compile(r"!?\[[^\]\n]*\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)")
_REFERENCE = re.compile(r"^\s{0,3}\[[^\]\n]+\]:\s*<?(\S+?)>?(?:\s+.*)?$", re.M)


def _links(text: str) -> list[str]:
    prose = _INLINE_CODE.sub("", _FENCED.sub("", text))
    return _LINK.findall(prose) + _REFERENCE.findall(prose)


@pytest.mark.parametrize("doc", DOCS, ids=lambda p: str(p.relative_to(ROOT)))
def test_relative_links_in_the_docs_resolve_inside_the_repository(doc: Path) -> None:
    """The repository ships alone: README.md and docs/*.md link only to files in it
    (``../shared/...`` pointed outside and was broken in a clone)."""
    text = doc.read_text(encoding="utf-8")
    assert "../shared/" not in text, f"{doc.name} refers outside the repository (../shared/)"
    broken = []
    for target in _links(text):
        if re.match(r"[a-z][a-z0-9+.-]*:", target, re.I) or target.startswith("#"):
            continue  # http(s)://, mailto:, an anchor in the same page
        path = target.split("#", 1)[0].split("?", 1)[0]
        resolved = (doc.parent / path).resolve()
        if not resolved.exists() or ROOT not in (resolved, *resolved.parents):
            broken.append(target)
    assert not broken, f"{doc.name}: links that do not resolve to a file of the repository: {broken}"


def test_the_link_check_sees_links() -> None:
    found = _links("[a](docs/x.md) ![b](img.png \"t\") `[c](no.md)`\n```\n[d](no.md)\n```\n[e]: ref.md\n")
    assert found == ["docs/x.md", "img.png", "ref.md"]
