"""Figures of the generate scenario (docs/generative.md), each run recorded as one JSON line in
``benchmarks/generate-runs.jsonl`` (with the load average, so that its figures replay).

    PYTHONPATH=$PWD:$PWD/examples:$PWD/benchmarks .venv/bin/python benchmarks/generate_study.py
        [tiny client overhead stamps paired open queue endpoint] [--repeats N]

tiny      the tiny Llama (examples/zoo/tiny_llm.py), 64 output tokens: TTFT, TPOT, ITL p50/p99
          and tokens/s at batch 1 and 4.
client    the same model served by examples/zoo/llm_server.py (pinned to core 1): our endpoint
          path (a client copy on core 0) against an independent client (the ``openai``
          package's streaming completions, timed per chunk with perf_counter in this process,
          pinned to core 0 meanwhile), interleaved, on the same server.
overhead  the harness's cost per token: TPOT and tokens/s of ``benchmark`` against a bare
          ``generate`` loop with a streamer in this process, both pinned to the same core,
          interleaved.
stamps    what the harness adds per token, without the model: the copy's streamer ``put`` (and
          per request, its bookkeeping) against a bare streamer's, timed with timeit (CPU work,
          so far less sensitive to a loaded machine than the interleaved runs above).
paired    ``compare`` of the tiny Llama against itself without its KV cache (``use_cache=False``)
          and against itself, default paired tolerances.
open      the open loop at 0.3x, 0.7x and 2.5x the closed loop's capacity measured just before
          (16 output tokens, so that a run sees enough requests): p99 TTFT, overload, goodput
          under SLOs.
queue     the same with a token stream of known timing (benchmarks/generate_models.py: 10 ms,
          then 2 ms a token; 16 tokens, about 40 ms a request): at 0.3x, 0.7x and 1.3x of
          its capacity, hundreds of requests a rate.
endpoint  in process (core 1) against the same model behind HTTP (server on core 1, client copy
          on core 0), interleaved: what the HTTP path adds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

import pytest_neuronperf as npf

HERE = Path(__file__).resolve().parent
EXAMPLES = HERE.parent / "examples"
RUNS = HERE / "generate-runs.jsonl"
CORE = 1
CLIENT_CORE = 0
TOKENS = 64
OPEN_TOKENS = 16
KEYS = ("ttft_ms_p50", "ttft_ms_p99", "tpot_ms_p50", "tpot_ms_p99", "itl_ms_p50", "itl_ms_p99",
        "output_tokens_per_s", "requests_per_s", "goodput", "goodput_ratio", "overloaded",
        "target_qps", "batch_size", "workers_per_model", "status", "error")


def load() -> list[float]:
    return [round(x, 2) for x in os.getloadavg()]


def record(study: str, **fields: Any) -> None:
    """Append one run to the JSONL file."""
    line = {"study": study, "time": time.strftime("%Y-%m-%dT%H:%M:%S"), "load": load(),
            **fields}
    with open(RUNS, "a") as out:
        out.write(json.dumps(line, default=float) + "\n")


def figures(report: dict[str, Any]) -> dict[str, Any]:
    return {k: report.get(k) for k in KEYS if k in report}


def prompts(count: int = 4) -> list[list[int]]:
    from zoo.tiny_llm import prompts as make

    return make(count)


def tiny(repeats: int) -> None:
    from zoo.tiny_llm import TinyLlama

    print(f"tiny Llama, {TOKENS} output tokens, one copy on core {CORE}")
    for _ in range(repeats):
        for report in npf.benchmark(TinyLlama, prompts(), scenario="generate",
                                    output_tokens=TOKENS, batch_sizes=[1, 4], n_models=1,
                                    workers_per_model=1, duration=10, cores=[CORE],
                                    verbosity=0):
            record("tiny", **figures(report))
            print(f"  bs={report['batch_size']}: TTFT p50/p99 {report['ttft_ms_p50']:.2f}/"
                  f"{report['ttft_ms_p99']:.2f} ms, TPOT {report['tpot_ms_p50']:.2f}/"
                  f"{report['tpot_ms_p99']:.2f} ms, ITL {report['itl_ms_p50']:.2f}/"
                  f"{report['itl_ms_p99']:.2f} ms, {report['output_tokens_per_s']:.0f} tokens/s"
                  f"  (load {load()})")


def start_llm_server() -> Any:
    """The example server, pinned to ``CORE`` (as an in-process copy would be)."""
    return npf.start_server(["taskset", "-c", str(CORE), sys.executable, "-m",
                             "zoo.llm_server", "--port", "{port}"], cwd=EXAMPLES, timeout=600)


def openai_requests(url: str, count: int) -> dict[str, float]:
    """``count`` sequential streaming completions with the openai client, timed per chunk."""
    import openai

    client = openai.OpenAI(base_url=url, api_key="none", max_retries=0)
    ttft, tpot, itl = [], [], []
    for i in range(count):
        start = time.perf_counter()
        stamps = []
        stream = client.completions.create(
            model="tiny-llama", prompt=prompts()[i % 4], max_tokens=TOKENS, stream=True,
            temperature=0, extra_body={"min_tokens": TOKENS, "ignore_eos": True})
        for chunk in stream:
            if chunk.choices and chunk.choices[0].text:
                stamps.append(time.perf_counter())
        ttft.append(stamps[0] - start)
        tpot.append((stamps[-1] - stamps[0]) / (len(stamps) - 1))
        itl += list(np.diff(stamps))
    return {"ttft_ms_p50": float(np.median(ttft) * 1e3),
            "ttft_ms_p99": float(np.percentile(ttft, 99) * 1e3),
            "tpot_ms_p50": float(np.median(tpot) * 1e3),
            "tpot_ms_p99": float(np.percentile(tpot, 99) * 1e3),
            "itl_ms_p50": float(np.median(itl) * 1e3), "requests": count}


def client(repeats: int) -> None:
    print(f"the same server (core {CORE}), our endpoint path vs the openai client (both on core "
          f"{CLIENT_CORE}), alternating short blocks ({4 * repeats} pairs)")
    layout = f"server on core {CORE}, clients on core {CLIENT_CORE}, short blocks"
    everywhere = os.sched_getaffinity(0)
    ratios: dict[str, list[float]] = {"ttft_ms_p50": [], "tpot_ms_p50": []}
    with start_llm_server() as server:
        url = server.url + "/v1"
        openai_requests(url, 1)  # warm: the client's first request builds its models
        for _ in range(4 * repeats):
            [ours] = npf.benchmark(npf.Endpoint(url), prompts(), scenario="generate",
                                   output_tokens=TOKENS, n_models=1, workers_per_model=1,
                                   duration=2, warmup=0.5, cores=[CLIENT_CORE], verbosity=0)
            os.sched_setaffinity(0, {CLIENT_CORE})
            try:
                theirs = openai_requests(url, 3)
            finally:
                os.sched_setaffinity(0, everywhere)
            record("client", side="ours", layout=layout, **figures(ours))
            record("client", side="openai", layout=layout, **theirs)
            for key in ratios:
                ratios[key].append(ours[key] / theirs[key])
            print(f"  TTFT p50 ours {ours['ttft_ms_p50']:.2f} openai {theirs['ttft_ms_p50']:.2f}"
                  f" ms; TPOT p50 ours {ours['tpot_ms_p50']:.2f} openai "
                  f"{theirs['tpot_ms_p50']:.2f} ms  (load {load()})")
    for key, values in ratios.items():
        print(ratio_line(f"{key}, ours / openai", values))


def bare_loop(seconds: float) -> dict[str, float]:
    """``generate`` with a timestamping streamer, in this process, for ``seconds``."""
    import torch
    from zoo.tiny_llm import TinyLlama

    torch.set_num_threads(1)
    model = bare_loop.__dict__.setdefault("model", TinyLlama().eval())

    class Stamps:
        def __init__(self) -> None:
            self.times: list[int] = []
            self.first = True

        def put(self, value: Any) -> None:
            if self.first:
                self.first = False
                return
            self.times.append(time.perf_counter_ns())

        def end(self) -> None:
            pass

    ids = [torch.tensor([p]) for p in prompts()]
    tpot, tokens, started = [], 0, time.perf_counter()
    with torch.inference_mode():
        while time.perf_counter() - started < seconds:
            streamer = Stamps()
            prompt = ids[len(tpot) % len(ids)]
            model.generate(prompt, attention_mask=torch.ones_like(prompt),
                           max_new_tokens=TOKENS, min_new_tokens=TOKENS, do_sample=False,
                           pad_token_id=0, streamer=streamer)
            tpot.append((streamer.times[-1] - streamer.times[0]) / (TOKENS - 1) / 1e6)
            tokens += len(streamer.times)
    return {"tpot_ms_p50": float(np.median(tpot)),
            "output_tokens_per_s": tokens / (time.perf_counter() - started)}


def ratio_line(name: str, values: list[float]) -> str:
    """The median of per-pair ratios, with its quartiles."""
    return (f"  {name}: median of {len(values)} pairs {np.median(values):.3f} (quartiles "
            f"{np.percentile(values, 25):.3f}..{np.percentile(values, 75):.3f})")


def overhead(repeats: int) -> None:
    from zoo.tiny_llm import TinyLlama

    os.sched_setaffinity(0, {CORE})
    print(f"harness vs a bare generate loop, both on core {CORE}, alternating 4 s blocks "
          f"({4 * repeats} pairs)")
    bare_loop(2)  # builds and warms the model here
    tpot, tokens = [], []
    for _ in range(4 * repeats):
        [ours] = npf.benchmark(TinyLlama, prompts(), scenario="generate", output_tokens=TOKENS,
                               n_models=1, workers_per_model=1, duration=4, warmup=1,
                               cores=[CORE], verbosity=0)
        bare = bare_loop(4)
        record("overhead", side="harness", blocks="4 s", **figures(ours))
        record("overhead", side="bare", blocks="4 s", **bare)
        tpot.append(ours["tpot_ms_p50"] / bare["tpot_ms_p50"])
        tokens.append(ours["output_tokens_per_s"] / bare["output_tokens_per_s"])
        print(f"  TPOT p50 harness {ours['tpot_ms_p50']:.3f} bare {bare['tpot_ms_p50']:.3f} ms;"
              f" tokens/s harness {ours['output_tokens_per_s']:.1f} bare "
              f"{bare['output_tokens_per_s']:.1f}  (load {load()})")
    print(ratio_line("TPOT p50, harness / bare", tpot))
    print(ratio_line("tokens/s, harness / bare", tokens))


def stamps(repeats: int) -> None:
    import timeit

    import torch

    from pytest_neuronperf.child.token_driver import RequestLog, run_request
    from pytest_neuronperf.child.token_streams import Batch, IteratorStream, StampStreamer

    step = torch.zeros(1, dtype=torch.long)
    stamps_ns: list[int] = []

    class Bare:
        def put(self, value: Any) -> None:
            stamps_ns.append(time.perf_counter_ns())

    ours = StampStreamer(stamps_ns.append, prompt_length=16)
    ours.put(torch.zeros(1, 16))  # the prompt, left out
    log = RequestLog()
    stream = IteratorStream(lambda prompt, n: iter(range(n)))
    plan = [Batch(None, TOKENS, 16, 1, 0)]

    def bare_request() -> None:  # the same tokens, stamped by a plain loop
        for _ in iter(range(TOKENS)):
            stamps_ns.append(time.perf_counter_ns())

    def best_ns(work: Any, number: int) -> float:
        return min(timeit.repeat(work, number=number, repeat=5)) / number * 1e9

    print("per token (streamer put) and per request (driver bookkeeping), timeit")
    for _ in range(repeats):
        bare_put = best_ns(lambda: Bare().put(step), 200_000)
        ours_put = best_ns(lambda: ours.put(step), 200_000)
        driver = best_ns(lambda: run_request(stream, plan, 0, None, log, True), 2000)
        bare = best_ns(bare_request, 2000)
        stamps_ns.clear()
        record("stamps", bare_put_ns=bare_put, ours_put_ns=ours_put,
               driver_request_us=driver / 1e3, bare_request_us=bare / 1e3)
        print(f"  put: bare {bare_put:.0f} ns, ours {ours_put:.0f} ns; a {TOKENS}-token request "
              f"through the driver {driver / 1e3:.1f} us, a bare loop {bare / 1e3:.1f} us  "
              f"(load {load()})")


def paired(repeats: int) -> None:
    from zoo.tiny_llm import TinyLlama, TinyLlamaWithoutCache

    print(f"compare(): without its KV cache, and identical code ({TOKENS} tokens, 3 s a side)")
    for _ in range(repeats):
        for base, head in ((TinyLlama, TinyLlamaWithoutCache), (TinyLlama, TinyLlama)):
            [report] = npf.compare(base, head, prompts(), scenario="generate",
                                   output_tokens=TOKENS, n_models=1, workers_per_model=1,
                                   duration=3, cores=[CORE], verbosity=0)
            part = report["paired"]
            record("paired", head=head.__name__, verdict=part.get("verdict"),
                   delta=part.get("delta"), interval=part.get("interval"),
                   p_adjusted=part.get("p_adjusted"), rounds=part.get("rounds"))
            tpot = (part.get("delta") or {}).get("tpot_ms_p99")
            print(f"  {head.__name__:<22} {part.get('verdict'):<12} TPOT "
                  f"{tpot if tpot is None else f'{tpot:+.1%}'} "
                  f"{part.get('interval', {}).get('tpot_ms_p99')}  (load {load()})")


def open_loop(repeats: int) -> None:
    from zoo.tiny_llm import TinyLlama

    print(f"open loop at 0.3x, 0.7x and 2.5x the closed-loop capacity measured just before "
          f"({OPEN_TOKENS} tokens, 15 s a rate)")
    for _ in range(repeats):
        [closed] = npf.benchmark(TinyLlama, prompts(), scenario="generate",
                                 output_tokens=OPEN_TOKENS, n_models=1, workers_per_model=1,
                                 duration=8, cores=[CORE], verbosity=0)
        capacity = closed["requests_per_s"]
        slo_ttft = 4 * closed["ttft_ms_p50"]
        slo_tpot = 1.5 * closed["tpot_ms_p50"]
        record("open", stage="capacity", capacity=capacity, slo_ttft_ms=slo_ttft,
               slo_tpot_ms=slo_tpot, output_tokens=OPEN_TOKENS, **figures(closed))
        rates = [round(capacity * f, 3) for f in (0.3, 0.7, 2.5)]
        print(f"  capacity {capacity:.2f}/s; SLO TTFT {slo_ttft:.0f} ms, TPOT {slo_tpot:.1f} ms")
        for report in npf.benchmark(TinyLlama, prompts(), scenario="generate",
                                    output_tokens=OPEN_TOKENS, n_models=1, workers_per_model=1,
                                    duration=15, target_qps=rates, cores=[CORE],
                                    slo_ttft_ms=slo_ttft, slo_tpot_ms=slo_tpot, verbosity=0):
            record("open", output_tokens=OPEN_TOKENS, capacity=capacity, **figures(report))
            print(f"  {report['target_qps']:.3f}/s: TTFT p99 {report['ttft_ms_p99']:.0f} ms, "
                  f"overloaded {report['overloaded']}, goodput {report['goodput']:.3f}/s "
                  f"({report['goodput_ratio']:.0%})  (load {load()})")


def queue(repeats: int) -> None:
    from generate_models import SleepyTokens

    [closed] = npf.benchmark(SleepyTokens, prompts(), scenario="generate",
                             output_tokens=OPEN_TOKENS, n_models=1, workers_per_model=1,
                             duration=5, cores=[CORE], verbosity=0)
    capacity = closed["requests_per_s"]
    slo_ttft = 3 * closed["ttft_ms_p50"]
    rates = [round(capacity * f, 2) for f in (0.3, 0.7, 1.3)]
    record("queue", stage="capacity", capacity=capacity, slo_ttft_ms=slo_ttft,
           **figures(closed))
    print(f"known-timing stream: capacity {capacity:.1f}/s, rates {rates}, SLO TTFT "
          f"{slo_ttft:.1f} ms")
    for _ in range(repeats):
        for report in npf.benchmark(SleepyTokens, prompts(), scenario="generate",
                                    output_tokens=OPEN_TOKENS, n_models=1, workers_per_model=1,
                                    duration=10, target_qps=rates, cores=[CORE],
                                    slo_ttft_ms=slo_ttft, verbosity=0):
            record("queue", capacity=capacity, **figures(report))
            print(f"  {report['target_qps']:.2f}/s: TTFT p50/p99 {report['ttft_ms_p50']:.1f}/"
                  f"{report['ttft_ms_p99']:.1f} ms, overloaded {report['overloaded']}, goodput "
                  f"{report['goodput']:.2f}/s ({report['goodput_ratio']:.0%})  (load {load()})")


def endpoint(repeats: int) -> None:
    from zoo.tiny_llm import TinyLlama

    print(f"in process (core {CORE}) vs the same model behind HTTP (server on core {CORE}, "
          f"client copy on core {CLIENT_CORE}), alternating 4 s blocks ({4 * repeats} pairs)")
    layout = f"model on core {CORE} either way, HTTP client on core {CLIENT_CORE}, 4 s blocks"
    ratios: dict[str, list[float]] = {"ttft_ms_p50": [], "tpot_ms_p50": []}
    with start_llm_server() as server:
        for _ in range(4 * repeats):
            [inside] = npf.benchmark(TinyLlama, prompts(), scenario="generate",
                                     output_tokens=TOKENS, n_models=1, workers_per_model=1,
                                     duration=4, warmup=1, cores=[CORE], verbosity=0)
            [http] = npf.benchmark(npf.Endpoint(server.url + "/v1"), prompts(),
                                   scenario="generate", output_tokens=TOKENS, n_models=1,
                                   workers_per_model=1, duration=4, warmup=1,
                                   cores=[CLIENT_CORE], verbosity=0)
            record("endpoint", side="in process", layout=layout, **figures(inside))
            record("endpoint", side="http", layout=layout, **figures(http))
            for key in ratios:
                ratios[key].append(http[key] / inside[key])
            print(f"  TTFT p50 in process {inside['ttft_ms_p50']:.2f} http "
                  f"{http['ttft_ms_p50']:.2f} ms; TPOT p50 {inside['tpot_ms_p50']:.2f} / "
                  f"{http['tpot_ms_p50']:.2f} ms  (load {load()})")
    for key, values in ratios.items():
        print(ratio_line(f"{key}, http / in process", values))


STUDIES = {"tiny": tiny, "client": client, "overhead": overhead, "stamps": stamps,
           "paired": paired,
           "open": open_loop, "queue": queue, "endpoint": endpoint}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("studies", nargs="*", default=list(STUDIES), choices=list(STUDIES))
    parser.add_argument("--repeats", type=int, default=3)
    arguments = parser.parse_args()
    for name in arguments.studies:
        STUDIES[name](arguments.repeats)


if __name__ == "__main__":
    main()
