"""Run each call pattern of NeuronPerf's benchmark guide, examples, compile, evaluate and model
index guides and API reference, as a NeuronPerf user writes it but with
``import pytest_neuronperf as npf``, and print which work.

Adaptations, all of the machine and not of the call: durations are short (``DURATION``), the
model is a small torch CNN instead of a Neuron-compiled ResNet-50 (no torchvision, no Inferentia
here), ``n_models`` beyond this machine's cores is lowered to what it has, and the FashionMNIST
dataset is a TensorDataset of the same shape (no download). GPU patterns run where CUDA exists
and otherwise must be refused with a clear sentence.

    PYTHONPATH=. python benchmarks/neuronperf_patterns.py
"""

from __future__ import annotations

import os
import sys
import tempfile
import traceback
from collections.abc import Callable
from pathlib import Path

import torch

import pytest_neuronperf as npf
import pytest_neuronperf.torch  # noqa: F401 - as NeuronPerf users write it

DURATION = 0.4
CORES = len(os.sched_getaffinity(0))


class Model(torch.nn.Module):
    """A small image classifier standing in for ResNet-50 (3x224x224 -> 10 classes)."""

    def __init__(self) -> None:
        super().__init__()
        self.features = torch.nn.Sequential(
            torch.nn.Conv2d(3, 8, 7, stride=8), torch.nn.ReLU(), torch.nn.AdaptiveAvgPool2d(1))
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x).flatten(1))


class Gray(Model):
    """The same for 1x28x28 FashionMNIST-shaped images."""

    def __init__(self) -> None:
        super().__init__()
        self.features[0] = torch.nn.Conv2d(1, 8, 7, stride=4)


class ThreeInputs(torch.nn.Module):
    """``forward(self, x, y, z)``, as in the guide's multi-input example."""

    def forward(self, x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        return x + y * z


def preprocess_fn(x: torch.Tensor) -> torch.Tensor:
    return x * 5


def preprocess_three(x: torch.Tensor, y: torch.Tensor, z: torch.Tensor) -> tuple[torch.Tensor,
                                                                                  ...]:
    return x / 255, y / 255, z / 255


def postprocess_fn(x: torch.Tensor) -> torch.Tensor:
    return x.argmax()


def fashion_like(n: int = 64) -> torch.utils.data.TensorDataset:
    """(image, label) samples shaped like torchvision's FashionMNIST with ToTensor()."""
    generator = torch.Generator().manual_seed(0)
    return torch.utils.data.TensorDataset(torch.rand(n, 1, 28, 28, generator=generator),
                                          torch.randint(0, 10, (n,), generator=generator))


def patterns(work: Path) -> list[tuple[str, Callable[[], object]]]:
    """(where it is documented, the call) for every pattern."""
    os.chdir(work)
    batch_sizes: int | list[int] = 1
    input_shape = (batch_sizes, 3, 224, 224)
    inputs = torch.ones(input_shape)
    filename = "your_model_file.pt"
    torch.jit.save(torch.jit.trace(Model().eval(), inputs), filename)
    model = Model().eval()  # an instance with (here random) trained weights
    half_model = Model().eval().half()
    d = DURATION

    def compiled_index() -> str:
        sizes = [5, 6, 7]
        example = [torch.zeros([b, 3, 224, 224], dtype=torch.float32) for b in sizes]
        checked_index(npf.torch.compile(model, example, batch_sizes=sizes,
                                        filename="resnet50.json"))
        reports = npf.torch.benchmark("resnet50.json", example, duration=d, n_models=1,
                                      workers_per_model=1)
        npf.print_reports(reports)
        npf.write_csv(reports, "resnet50_results.csv")
        npf.write_json(reports, "resnet50_results.json")
        return "resnet50.json"

    def fashion_index() -> str:
        return checked_index(npf.torch.compile(Gray(), torch.zeros(8, 1, 28, 28), batch_sizes=[8],
                                 filename="model_index.json"))

    def check(reports: list[dict[str, object]]) -> list[dict[str, object]]:
        bad = [r for r in reports if r.get("status") != "ok"]
        if bad:
            raise RuntimeError(f"{len(bad)} configuration(s) failed: {bad[0].get('error')}")
        return reports

    def gpu(call: Callable[[], object]) -> Callable[[], object]:
        def run() -> object:
            if torch.cuda.is_available():
                return call()
            try:
                call()
            except Exception as exc:  # noqa: BLE001 - the refusal is the expected outcome
                return f"refused without a GPU: {str(exc).splitlines()[0][:90]}"
            raise RuntimeError("device_type='gpu' ran without a GPU")
        return run

    index_pipes = lambda: npf.model_index.save(npf.model_index.append(*[  # noqa: E731
        npf.model_index.create(filename, pipeline_size=p, batch_size=1)
        for p in (1, 2)]), "pipes.json")
    three = (torch.rand(1, 4), torch.rand(1, 4), torch.rand(1, 4))
    n_copies = min(6, CORES)

    return [
        ("examples: benchmark a compiled model", lambda: check(
            npf.torch.benchmark(filename, inputs, batch_sizes, duration=d))),
        ("examples: print_reports / write_csv / write_json", lambda: (
            npf.print_reports(check(npf.torch.benchmark(filename, inputs, batch_sizes,
                                                        duration=d, n_models=1))),
            npf.write_csv(npf.torch.benchmark(filename, inputs, batch_sizes, duration=d,
                                              n_models=1)),
            npf.write_json(npf.torch.benchmark(filename, inputs, batch_sizes, duration=d,
                                               n_models=1)))),
        ("examples: n_models=1, workers_per_model=[1, 2], duration", lambda: check(
            npf.torch.benchmark(filename, inputs, batch_sizes, n_models=1,
                                workers_per_model=[1, 2], duration=d))),
        ("examples: model_name='MyFancyModel'", lambda: check(npf.torch.benchmark(
            filename, inputs, batch_sizes, n_models=1, duration=d, model_name="MyFancyModel"))),
        ("examples: compile an instance (resnet50 script) and benchmark the index",
         compiled_index),
        ("guide: multi-input tuple", lambda: check(npf.torch.benchmark(
            ThreeInputs, three, duration=d, n_models=1))),
        ("guide: list of tuples, one per batch size", lambda: check(npf.torch.benchmark(
            ThreeInputs, [three, tuple(t.repeat(2, 1) for t in three)], batch_sizes=[1, 2],
            duration=d, n_models=1))),
        ("guide: preprocess_fn (one input)", lambda: check(npf.torch.benchmark(
            filename, inputs, duration=d, n_models=1, preprocess_fn=preprocess_fn))),
        ("guide: preprocess_fn (three inputs)", lambda: check(npf.torch.benchmark(
            ThreeInputs, three, duration=d, n_models=1, preprocess_fn=preprocess_three))),
        ("guide: postprocess_fn", lambda: check(npf.torch.benchmark(
            filename, inputs, duration=d, n_models=1, postprocess_fn=postprocess_fn))),
        ("guide: workers_per_model=1", lambda: check(npf.torch.benchmark(
            filename, inputs, duration=d, workers_per_model=1))),
        (f"guide: n_models=6 (lowered to {n_copies} cores)", lambda: check(npf.torch.benchmark(
            filename, inputs, duration=d, n_models=n_copies, workers_per_model=1))),
        (f"guide: n_models=list(range(1, 10)) (lowered to 1..{CORES})", lambda: check(
            npf.torch.benchmark(filename, inputs, duration=d, workers_per_model=1,
                                n_models=list(range(1, CORES + 1))))),
        ("guide: pipeline_sizes=2", lambda: check(npf.torch.benchmark(
            filename, inputs, duration=d, pipeline_sizes=2))),
        ("guide: index with pipeline_sizes=[1, 2, 3] as a filter", lambda: check(
            npf.torch.benchmark(index_pipes(), inputs, duration=d, pipeline_sizes=[1, 2, 3],
                                n_models=1, workers_per_model=1))),
        ("guide: duration=10 (shortened)", lambda: check(npf.torch.benchmark(
            "resnet50.json", [torch.zeros(b, 3, 224, 224) for b in (5, 6, 7)], duration=d,
            n_models=1, workers_per_model=1))),
        ("guide: custom dataset, preprocess_fn=lambda x: x[0], loop_dataset=False", lambda: check(
            npf.torch.benchmark(fashion_index(), inputs=fashion_like(), batch_sizes=[8],
                                preprocess_fn=lambda x: x[0], loop_dataset=False))),
        ("guide: loop_dataset=True", lambda: check(npf.torch.benchmark(
            "model_index.json", inputs=fashion_like(), batch_sizes=[8], duration=d, n_models=1,
            preprocess_fn=lambda x: x[0], loop_dataset=True))),
        ("guide: return_timers=True, then get_reports(results)", lambda: check(npf.get_reports(
            npf.torch.benchmark(filename, inputs, duration=d, n_models=1,
                                return_timers=True)))),
        ("guide: verbosity=2", lambda: check(npf.torch.benchmark(
            filename, inputs, n_models=1, duration=d, verbosity=2))),
        ("guide: multiprocess=False", lambda: check(npf.torch.benchmark(
            filename, inputs, n_models=1, duration=d, multiprocess=False))),
        ("guide: multiinterpreter=True", lambda: check(npf.torch.benchmark(
            filename, inputs, n_models=1, workers_per_model=1, duration=d,
            multiinterpreter=True))),
        ("guide: npf.cpu.benchmark(YourModelClass, ...)", lambda: check(npf.cpu.benchmark(
            Model, inputs, duration=d, n_models=1))),
        ("guide: npf.torch.benchmark(YourModelClass, ..., device_type='gpu')", gpu(lambda: check(
            npf.torch.benchmark(Model, inputs, device_type="gpu", duration=d)))),
        ("api: cast_modes, env_setup_fn, setup_fn, stats_interval, cost_per_hour", lambda: check(
            npf.torch.benchmark(Model, inputs, duration=d, n_models=1, workers_per_model=1,
                                cast_modes=["fp32", "bf16"], env_setup_fn=lambda i, c: None,
                                setup_fn=lambda i, c, m: None, stats_interval=0.1,
                                cost_per_hour=0.228))),
        ("api: dataset_loader_fn", lambda: check(npf.torch.benchmark(
            Gray, fashion_like(), batch_sizes=8, duration=d, n_models=1,
            dataset_loader_fn=lambda data, b: torch.utils.data.DataLoader(
                data, batch_size=b, drop_last=True), preprocess_fn=lambda x: x[0]))),
        ("evaluate guide: benchmark(..., duration=0, eval_metrics=[...])", lambda: check(
            npf.torch.benchmark("model_index.json", fashion_like(), n_models=1,
                                workers_per_model=2, duration=0,
                                eval_metrics=["accuracy", "precision"]))),
        ("evaluate guide: npf.torch.evaluate(..., metrics=[...])", lambda: check(
            npf.torch.evaluate("model_index.json", fashion_like(),
                               metrics=["accuracy", "precision"]))),
        ("evaluate guide: metrics='accuracy', eval_target_col=1", lambda: check(
            npf.torch.evaluate("model_index.json", fashion_like(), metrics="accuracy",
                               eval_target_col=1))),
        ("evaluate guide: npf.list_metrics()", lambda: print(repr(npf.list_metrics()))),
        ("compile guide: batch_sizes x pipeline_sizes, fp16 example inputs (a half model)",
         lambda: checked_index(npf.torch.compile(
             half_model, [torch.zeros([b, 3, 224, 224], dtype=torch.float16) for b in (1, 5, 10)],
             batch_sizes=[1, 5, 10], pipeline_sizes=[1, 2, 4]))),
        ("compile guide: two compiles, model_index.append + save", lambda: checked_index(
            npf.model_index.save(npf.model_index.append(
                npf.torch.compile(model, [torch.zeros(b, 3, 224, 224) for b in (1, 5, 10)],
                                  batch_sizes=[1, 5, 10], pipeline_sizes=1),
                npf.torch.compile(model, torch.zeros(1, 3, 224, 224), batch_sizes=1,
                                  pipeline_sizes=[1, 2, 4])), "model_index.json"))),
        ("api: compile(..., performance_levels=[0, 3]) off Neuron: clear refusal", lambda:
            refused(lambda: npf.torch.compile(model, inputs, performance_levels=[0, 3]))),
        ("model index guide: create + save", lambda: npf.model_index.save(
            npf.model_index.create(str(work / filename), batch_size=1))),
        ("model index guide: create + save(index, 'my_index.json')", lambda:
            npf.model_index.save(npf.model_index.create(filename, batch_size=1),
                                 "my_index.json")),
        ("model index guide: append of pipeline sizes", index_pipes),
        ("model index guide: filter(index, batch_sizes=[1, 2])", lambda: npf.model_index.filter(
            "resnet50.json", batch_sizes=[5, 6])),
        ("model index guide: benchmark a subset (inputs for every size, batch_sizes=2)", lambda:
            check(npf.torch.benchmark(checked_index(
                npf.torch.compile(model, [torch.zeros((b, 3, 224, 224)) for b in (1, 2, 3)],
                                  batch_sizes=[1, 2, 3], filename="sizes.json")),
                [torch.zeros((b, 3, 224, 224)) for b in (1, 2, 3)], batch_sizes=2,
                duration=d, n_models=1, workers_per_model=1))),
        ("model index guide: copy(index, new_index_name, new_index_dir)", lambda:
            npf.model_index.copy("my_index.json", "copied/my_index.json", "copied")),
        ("api: model_index.move", lambda: npf.model_index.move(
            "copied/my_index.json", "moved/my_index.json", "moved")),
        ("model index guide: delete('my_index.json')", lambda: npf.model_index.delete(
            "moved/my_index.json")),
    ]


def checked_index(path: str) -> str:
    """A model index whose every configuration compiled."""
    failed = [c for c in npf.model_index.load(path)["model_configs"] if c["status"] != "ok"]
    if failed:
        raise RuntimeError(f"{len(failed)} configuration(s) failed to compile: "
                           f"{failed[0].get('error')}")
    return path


def refused(call: Callable[[], object]) -> str:
    """The call must raise a one-sentence refusal."""
    try:
        call()
    except (ValueError, TypeError) as exc:
        return f"refused: {str(exc)[:90]}"
    raise RuntimeError("was not refused")


def main() -> int:
    failures = 0
    with tempfile.TemporaryDirectory(prefix="npf-patterns-") as work:
        results = []
        for name, call in patterns(Path(work)):
            try:
                outcome = call()
                note = outcome if isinstance(outcome, str) and "refused" in outcome else ""
                results.append(("works", name, note))
            except Exception as exc:  # noqa: BLE001 - every failure is reported, none stops us
                failures += 1
                results.append(("FAILS", name, f"{type(exc).__name__}: {exc}".splitlines()[0]))
                traceback.print_exc(file=sys.stderr)
        os.chdir("/")
    print(f"\n{len(results) - failures} of {len(results)} documented NeuronPerf call patterns work")
    for status, name, note in results:
        print(f"  {status}  {name}" + (f"  [{note[:110]}]" if note else ""))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
