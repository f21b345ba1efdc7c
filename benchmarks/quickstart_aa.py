"""A/A runs of the README's quick start, as a user would run them: how often does it fail?

    .venv/bin/python benchmarks/quickstart_aa.py [--pairs 6]

Copies the quick start's ``test_perf.py`` out of README.md into a scratch directory, then for
each pair records a fresh baseline (``--neuronperf-save-baseline``) and compares the same code
against it, printing each comparison's verdict counts and outcome, and for a failed comparison
the gate's one-line reason (configuration, metric, change, tolerance). Identical code should pass;
every failure is a false alarm of the gate on this machine.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def quick_start_test() -> str:
    """The ``# test_perf.py`` code block of README.md."""
    readme = (ROOT / "README.md").read_text()
    found = re.search(r"```python\n(# test_perf\.py\n.*?)```", readme, re.S)
    if found is None:
        raise SystemExit("README.md has no '# test_perf.py' code block")
    return found.group(1)


def pytest_run(directory: Path, *args: str) -> str:
    """Output of one pytest session in ``directory``."""
    done = subprocess.run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider",
                           "--neuronperf-baseline=perf.json", *args],
                          cwd=directory, capture_output=True, text=True, check=False)
    return done.stdout


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pairs", type=int, default=6)
    args = parser.parse_args()
    failed = 0
    with tempfile.TemporaryDirectory(prefix="neuronperf-quickstart-") as scratch:
        directory = Path(scratch)
        (directory / "test_perf.py").write_text(quick_start_test())
        for i in range(args.pairs):
            (directory / "perf.json").unlink(missing_ok=True)
            pytest_run(directory, "--neuronperf-save-baseline")
            lines = pytest_run(directory).strip().splitlines()
            verdicts = next((line for line in reversed(lines)
                             if re.match(r"^\d+ (PASS|IMPROVED|REGRESSED|INCONCLUSIVE)", line)),
                            "?")
            outcome = lines[-1] if lines else "?"
            failed += "failed" in outcome
            print(f"pair {i + 1}: {verdicts} | {outcome.strip('= ')}", flush=True)
            for line in lines:  # which configuration failed, on which metric, by how much
                if line.startswith("FAILED") or "neuronperf gate failed:" in line:
                    print(f"    {line.strip()}", flush=True)
    print(f"A/A runs of the quick start that failed: {failed}/{args.pairs}")


if __name__ == "__main__":
    main()
