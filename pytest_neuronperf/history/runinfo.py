"""What a history records about a run besides its reports: commit, branch, dirty flag, time,
host and the versions of every installed distribution.

Plain data (a dict that JSON keeps), so it travels in report files (``write_json(run=...)``)
and rescue files unchanged. Nothing here imports torch or TensorFlow: versions come from
package metadata.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import time
import uuid
from importlib import metadata
from pathlib import Path
from typing import Any

GIT_TIMEOUT_S = 10.0
BRANCH_VARIABLES = ("GITHUB_HEAD_REF", "GITHUB_REF_NAME", "CI_COMMIT_REF_NAME", "BRANCH_NAME",
                    "BUILDKITE_BRANCH", "CIRCLE_BRANCH")
"""CI variables that name the branch when the checkout is a detached HEAD (first set wins)."""


def run_info(rootdir: Path, source: str = "pytest") -> dict[str, Any]:
    """This run: a new ``uid``, the time, the git state of ``rootdir``, host and packages."""
    commit, commit_time, branch, dirty = git_state(rootdir)
    return {"uid": uuid.uuid4().hex, "recorded_at": time.time(), "commit": commit,
            "commit_time": commit_time, "branch": branch, "dirty": dirty,
            "host": socket.gethostname(), "source": source, "packages": installed_packages()}


def git_state(rootdir: Path) -> tuple[str | None, float | None, str | None, bool | None]:
    """(commit, commit time, branch, dirty) of the repository at ``rootdir``; Nones outside one."""
    head = _git(rootdir, "show", "-s", "--format=%H %ct", "HEAD")
    if head is None:
        return None, None, None, None
    commit, _, when = head.partition(" ")
    branch = _git(rootdir, "symbolic-ref", "--short", "-q", "HEAD") or next(
        (os.environ[v] for v in BRANCH_VARIABLES if os.environ.get(v)), None)
    status = _git(rootdir, "status", "--porcelain", "--untracked-files=no")
    return commit, float(when) if when.isdigit() else None, branch, (
        None if status is None else bool(status))


def _git(rootdir: Path, *args: str) -> str | None:
    """A git command's output in ``rootdir`` (stripped), or None when it fails."""
    try:
        done = subprocess.run(["git", "-C", str(rootdir), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


def installed_packages() -> dict[str, str]:
    """Every installed distribution's version, by normalised name (``torch``, ``numpy`` ...)."""
    versions: dict[str, str] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] if dist.metadata else None
        if name:
            versions.setdefault(normalised(name), dist.version)
    return dict(sorted(versions.items()))


def normalised(name: str) -> str:
    """A distribution name as PEP 503 compares them: ``Foo_Bar`` -> ``foo-bar``."""
    return re.sub(r"[-_.]+", "-", name).lower()


def package_changes(before: dict[str, str], after: dict[str, str]) -> list[str]:
    """``torch 2.12.0 -> 2.13.0``, ``fastdep not installed -> 1.1``: what differs."""
    changes = []
    for name in sorted(set(before) | set(after)):
        old, new = before.get(name), after.get(name)
        if old != new:
            changes.append(f"{name} {old or 'not installed'} -> {new or 'not installed'}")
    return changes
