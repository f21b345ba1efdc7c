"""Sphinx configuration of pytest-neuronperf's documentation (Markdown pages read by MyST).

Build with ``./dev.sh docs``; ``tests/test_docs.py`` builds it with warnings as errors.
"""

from __future__ import annotations

project = "pytest-neuronperf"
author = "pytest-neuronperf contributors"
copyright = "pytest-neuronperf contributors"  # noqa: A001 - Sphinx's name for it

extensions = ["myst_parser"]
source_suffix = {".md": "markdown"}
root_doc = "index"
exclude_patterns = ["_build"]

# GitHub-style anchors for headings, so that `page.md#a-heading` links work both on GitHub
# and in the built HTML (Sphinx warns when one points nowhere).
myst_heading_anchors = 3
nitpicky = True
highlight_language = "none"

html_theme = "furo"
html_title = "pytest-neuronperf"
