"""The documentation builds without a warning, its links lead somewhere, and the figures and
names it states are the code's (docs/index.md says how pages are added)."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest
from doc_blocks import DOCS, README, ROOT, pages, stated

from pytest_neuronperf.gating.verdicts import Verdict
from pytest_neuronperf.metrics import METRICS

LINK = re.compile(r"(?<!!)\[[^\]]*\]\(([^)\s]+)\)")


def test_the_docs_build_without_a_warning(tmp_path: Path) -> None:
    # -W: a warning is an error; -n: nitpicky, every cross-reference must resolve; --keep-going:
    # report every warning, not only the first
    done = subprocess.run(
        [sys.executable, "-m", "sphinx", "-W", "--keep-going", "-n", "-q", "-b", "html",
         str(DOCS), str(tmp_path / "html")],
        capture_output=True, text=True, timeout=600, check=False)
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "html" / "index.html").exists()


def slug(heading: str) -> str:
    """GitHub's anchor for a heading (MyST's ``myst_heading_anchors`` makes the same)."""
    text = re.sub(r"[`*_]", "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def anchors(page: Path) -> set[str]:
    """The heading anchors of a Markdown page (headings inside code blocks excluded)."""
    found, fenced = set(), False
    for line in page.read_text().splitlines():
        if line.startswith("```"):
            fenced = not fenced
        elif not fenced and (heading := re.match(r"#{1,6} (.+)", line)):
            found.add(slug(heading.group(1)))
    return found


def local_links(page: Path) -> list[str]:
    """The links of ``page`` that point inside the repository (not to the web)."""
    return [link for link in LINK.findall(page.read_text())
            if not re.match(r"[a-z]+:", link)]


@pytest.mark.parametrize("page", pages(), ids=lambda p: str(p.relative_to(ROOT)))
def test_every_link_leads_to_a_file_and_heading_that_exist(page: Path) -> None:
    broken = []
    for link in local_links(page):
        target, _, anchor = link.partition("#")
        path = (page.parent / target).resolve() if target else page
        if not path.exists():
            broken.append(f"{link}: no file {path.relative_to(ROOT)}")
        elif anchor and path.suffix == ".md" and anchor not in anchors(path):
            broken.append(f"{link}: {path.relative_to(ROOT)} has no heading with anchor "
                          f"#{anchor}")
    assert not broken, f"{page.relative_to(ROOT)}: " + "; ".join(broken)


def test_the_readme_links_every_docs_page() -> None:
    linked = {(README.parent / link.partition("#")[0]).resolve() for link in local_links(README)}
    unlinked = [p.name for p in sorted(DOCS.glob("*.md")) if p.resolve() not in linked]
    assert not unlinked, (f"README.md's Documentation list does not link docs/"
                          f"{', docs/'.join(unlinked)}: add a line for each")


def test_the_readme_stays_short() -> None:
    lines = README.read_text().count("\n")
    assert lines <= 230, (f"README.md has {lines} lines: move details to a page in docs/ and "
                          f"link it (docs/index.md, 'Adding a page')")


def test_every_package_path_named_in_the_docs_exists() -> None:
    for page in pages():
        for named in re.findall(r"`(pytest_neuronperf/[\w/]+\.py)`", page.read_text()):
            assert (ROOT / named).exists(), f"{page.relative_to(ROOT)} names {named}, which " \
                                            f"does not exist"


# --- figures and names the pages state, against the code -----------------------------------------


def verdict_rows(page: Path) -> dict[str, str]:
    """Verdict -> the "test" column of the page's verdict table."""
    return dict(re.findall(r"^\| `([A-Z_]+)` \|.*\| ([^|]+) \|$", page.read_text(), re.M))


@pytest.mark.parametrize("page", [README, DOCS / "results.md"], ids=lambda p: p.name)
def test_the_verdict_table_lists_every_verdict_and_whether_it_fails(page: Path) -> None:
    rows = verdict_rows(page)
    assert set(rows) == {v.value for v in Verdict}, f"{page.name}: verdict table rows {rows}"
    for name, outcome in rows.items():
        verdict = Verdict(name)
        assert outcome.startswith("fails") == verdict.failing(strict=False), (page.name, name)
        assert (outcome.startswith("fails") or "fails with `--neuronperf-strict`" in outcome) \
            == verdict.failing(strict=True), (page.name, name)


def percentages(page: str, pattern: str) -> tuple[float, ...]:
    """The percentages ``pattern``'s groups find in docs/``page``, as fractions."""
    return tuple(float(group) / 100 for group in stated(page, pattern))


def test_the_stated_default_tolerances_are_the_codes() -> None:
    def default(name: str) -> float:
        return METRICS[name].default_tolerance

    assert percentages("statistics.md", r"default tolerances \(throughput (\d+) %, p50 (\d+) %, "
                                   r"p99 (\d+) %\)") \
        == (default("throughput"), default("latency_ms_p50"), default("latency_ms_p99"))
    assert percentages("neuronperf-api.md", r"\(memory (\d+) %, accuracy (\d+) %, relative") \
        == (default("memory_mb_peak"), default("accuracy"))
    assert percentages("serving.md", r"tolerance `max_qps:(\d+)%`") == (default("max_qps"),)


def usage_names(pattern: str) -> set[str]:
    """Names in the first column of docs/usage.md's tables that match ``pattern``."""
    return set(re.findall(pattern, (DOCS / "usage.md").read_text(), re.M))


def test_every_option_is_documented(pytester: pytest.Pytester) -> None:
    shown = set(re.findall(r"(--neuronperf-[a-z-]+)", pytester.runpytest("--help").stdout.str()))
    documented = usage_names(r"^\| `(--neuronperf-[a-z-]+)")
    documented |= usage_names(r"^\| `--neuronperf-[a-z-]+(?:=\w+)?`, `(--neuronperf-[a-z-]+)")
    documented |= usage_names(r"^\| `--neuronperf-[a-z-]+` / `(--neuronperf-[a-z-]+)")
    assert shown == documented, (f"options not in docs/usage.md: {sorted(shown - documented)}; "
                                 f"documented but gone: {sorted(documented - shown)}")


def test_every_marker_keyword_is_documented(pytester: pytest.Pytester) -> None:
    pytester.makepyfile("""
        import pytest

        @pytest.mark.neuronperf(no_such_keyword=1)
        def test_x(neuronperf):
            pass
    """)
    done = pytester.runpytest()
    output = done.stdout.str() + done.stderr.str()
    known = re.search(r"known: ([\w, ]+)", output)
    assert known is not None, output
    keywords = set(known.group(1).replace(",", " ").split())
    documented = usage_names(r"^\| `(\w+)`")
    documented |= usage_names(r"^\| `\w+`, `(\w+)`")
    assert keywords <= documented, f"not in docs/usage.md: {sorted(keywords - documented)}"


def user_pages_text() -> str:
    """README.md and the docs pages a user reads (the architecture page is for contributors)."""
    return "\n".join(p.read_text() for p in pages() if p.name != "architecture.md")


def test_every_public_name_of_the_library_is_documented() -> None:
    import pytest_neuronperf

    text = user_pages_text()
    missing = [name for name in pytest_neuronperf.__all__
               if not re.search(rf"`[^`\n]*\b{name}\b[^`\n]*`", text)]
    assert not missing, f"pytest_neuronperf.{', '.join(missing)}: in no docs page"


def test_every_command_of_the_cli_is_documented() -> None:
    done = subprocess.run([sys.executable, "-m", "pytest_neuronperf", "--help"],
                          capture_output=True, text=True, timeout=60, check=True)
    found = re.search(r"\{([\w,-]+)\}", done.stdout)
    assert found is not None, done.stdout
    text = user_pages_text()
    missing = [command for command in found.group(1).split(",")
               if f"pytest-neuronperf {command}" not in text]
    assert not missing, f"pytest-neuronperf {', '.join(missing)}: in no docs page"
