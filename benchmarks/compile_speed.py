"""Compile time per compiler, and compiled vs eager throughput, for small torch models.

    .venv/bin/python benchmarks/compile_speed.py [--duration 5] [--batch-sizes 1 8]
                                                 [--models MLP ResNetish] [--warm-inductor]

For each model: ``compile`` with ``torchscript`` and ``export`` (AOTInductor) into a scratch
directory with ``cache=False`` and, unless ``--warm-inductor``, an empty TorchInductor cache, so
``export`` pays its whole first-compile cost. Then eager, torchscript and export are benchmarked
one after another per batch size with the same settings (n_models=1, workers_per_model=1, the
same duration), and the table gives each one's throughput as a ratio to eager in the same run.
``compile s`` is the framework compile of one configuration (from the index); ``call s`` is the
whole ``compile`` call for all batch sizes (process start, build, compile, verification).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).parent))

import torch  # noqa: E402
from bench_models import MLP, ResNetish  # noqa: E402

import pytest_neuronperf as npf  # noqa: E402

MODELS: dict[str, tuple[Any, tuple[int, ...]]] = {
    "MLP": (MLP, (512,)),
    "ResNetish": (ResNetish, (3, 64, 64)),
}
COMPILERS = ("torchscript", "export")


def compile_all(
    model: Any, example: torch.Tensor, batch_sizes: list[int], models_dir: Path
) -> dict[str, tuple[str, float]]:
    """Per compiler: (index path, seconds the whole ``compile`` call took)."""
    indexes = {}
    for compiler in COMPILERS:
        started = time.perf_counter()
        index = npf.compile(
            model,
            example,
            batch_sizes=batch_sizes,
            compiler=compiler,
            models_dir=models_dir,
            filename=f"{model.__name__}-{compiler}.json",
            cache=False,
            verbosity=0,
        )
        indexes[compiler] = (index, time.perf_counter() - started)
    return indexes


def index_entry(index: str, batch_size: int) -> dict[str, Any]:
    """The index entry of one batch size."""
    entries = json.loads(Path(index).read_text())["model_configs"]
    return next(e for e in entries if e["batch_size"] == batch_size)


def measure(target: Any, example: torch.Tensor, batch_size: int, duration: float) -> dict[str, Any]:
    """One benchmark configuration: 1 copy, 1 worker."""
    reports = npf.benchmark(
        target,
        example,
        batch_sizes=[batch_size],
        n_models=1,
        workers_per_model=1,
        duration=duration,
        framework="torch",
        verbosity=0,
    )
    return reports[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 8])
    parser.add_argument("--models", nargs="+", choices=sorted(MODELS), default=list(MODELS))
    parser.add_argument("--warm-inductor", action="store_true",
                        help="reuse the existing TorchInductor cache (faster export compiles)")
    args = parser.parse_args()

    scratch = Path(tempfile.mkdtemp(prefix="neuronperf-compile-speed-"))
    if not args.warm_inductor:
        os.environ["TORCHINDUCTOR_CACHE_DIR"] = str(scratch / "inductor-cache")
    print(f"torch {torch.__version__}, duration {args.duration} s, batch sizes "
          f"{args.batch_sizes}, {'warm' if args.warm_inductor else 'empty'} inductor cache")
    header = (f"{'model':<10} {'bs':>3} {'variant':<12} {'compile s':>9} {'call s':>7} "
              f"{'throughput/s':>13} {'p50 ms':>8} {'p99 ms':>8} {'vs eager':>8}")
    lines = [header, "-" * len(header)]
    try:
        for name in args.models:
            model, shape = MODELS[name]
            example = torch.rand(1, *shape)
            indexes = compile_all(model, example, args.batch_sizes, scratch / "models")
            for batch_size in args.batch_sizes:
                eager = measure(model, example, batch_size, args.duration)
                rows = [("eager", eager, "-", "-")]
                for compiler, (index, call_s) in indexes.items():
                    entry = index_entry(index, batch_size)
                    if entry["status"] != "ok":
                        print(f"{name} bs={batch_size} {compiler}: {entry['error']}")
                        continue
                    report = measure(index, example, batch_size, args.duration)
                    rows.append((compiler, report, f"{entry['compile_s']:.2f}", f"{call_s:.1f}"))
                for variant, report, compile_s, call_s in rows:
                    if report["status"] != "ok":
                        print(f"{name} bs={batch_size} {variant}: {report['error']}")
                        continue
                    ratio = (report["throughput_avg"] / eager["throughput_avg"]
                             if eager["status"] == "ok" else float("nan"))
                    lines.append(
                        f"{name:<10} {batch_size:>3} {variant:<12} {compile_s:>9} {call_s:>7} "
                        f"{report['throughput_avg']:>13,.0f} {report['latency_ms_p50']:>8.3f} "
                        f"{report['latency_ms_p99']:>8.3f} {ratio:>8.2f}"
                    )
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    print()
    print("\n".join(lines))


if __name__ == "__main__":
    main()
