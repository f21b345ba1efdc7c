"""The fenced code blocks of README.md and docs/*.md, as the documentation tests read them.

A ``python`` block whose first line is ``# <name>.py`` is a file: ``test_*.py`` blocks run with
pytest, other files run as scripts, ``conftest.py`` serves its page's test blocks. Any other
block says why it is not run in its info string: ```` ```yaml norun: a GitHub Actions fragment ````
(see docs/index.md, "Adding a page").
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from markdown_it import MarkdownIt

ROOT = Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
README = ROOT / "README.md"
FILE_LINE = re.compile(r"# ([A-Za-z_][A-Za-z0-9_]*\.py)\s*$")
NORUN = re.compile(r"norun:\s*(\S.*)$")


def pages() -> list[Path]:
    """README.md and every documentation page."""
    return [README, *sorted(DOCS.glob("*.md"))]


@dataclass(frozen=True)
class Block:
    """One fenced or indented code block of a Markdown page."""

    page: Path
    line: int
    """1-based line of the opening fence."""
    info: str
    code: str
    fenced: bool = True

    @property
    def where(self) -> str:
        """``docs/paired.md:10``, for messages."""
        return f"{self.page.relative_to(ROOT)}:{self.line}"

    @property
    def language(self) -> str:
        """The info string's first word."""
        return self.info.split(maxsplit=1)[0] if self.info else ""

    @property
    def norun(self) -> str | None:
        """Why the block is not run, when its info string says ``norun: <why>``."""
        found = NORUN.search(self.info)
        return found.group(1).strip() if found else None

    @property
    def filename(self) -> str | None:
        """The file a python block is (its first line ``# name.py``), or None."""
        first = self.code.split("\n", 1)[0]
        found = FILE_LINE.match(first)
        return found.group(1) if self.language == "python" and found else None

    @property
    def runs(self) -> str | None:
        """How the tests run this block: ``pytest``, ``script``, ``conftest`` or None."""
        if self.norun is not None or self.filename is None:
            return None
        if self.filename == "conftest.py":
            return "conftest"
        return "pytest" if self.filename.startswith("test_") else "script"


def blocks(page: Path) -> list[Block]:
    """Every code block of ``page`` (a MyST directive such as ``{toctree}`` is not code)."""
    found = []
    for token in MarkdownIt("commonmark").parse(page.read_text()):
        if token.type not in ("fence", "code_block") or token.map is None:
            continue
        info = token.info.strip()
        if info.startswith("{"):
            continue
        found.append(Block(page, token.map[0] + 1, info, token.content,
                           fenced=token.type == "fence"))
    return found


def all_blocks() -> list[Block]:
    """Every code block of README.md and the documentation pages."""
    return [block for page in pages() for block in blocks(page)]


def files_for(block: Block) -> dict[str, str]:
    """The files a runnable block runs among: the README quick start's ``test_perf.py`` (so a
    page may ``from test_perf import MLP``) and every file block of the block's own page."""
    files = {b.filename: b.code for b in blocks(README) if b.filename == "test_perf.py"}
    files.update({b.filename: b.code for b in blocks(block.page)
                  if b.filename is not None and b.norun is None})
    return files


def stated(page: str, pattern: str) -> tuple[str, ...]:
    """The groups ``pattern`` finds in docs/``page``, whose white space is folded to one space
    (a figure may wrap onto the next line)."""
    text = re.sub(r"\s+", " ", (DOCS / page).read_text())
    found = re.search(pattern, text)
    assert found is not None, f"docs/{page} no longer states {pattern!r}"
    return found.groups()
