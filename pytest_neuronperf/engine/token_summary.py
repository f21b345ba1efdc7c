"""The generate scenario's figures, from the copies' token timestamps (parent side).

Pure functions over ``generated`` messages. Per request (a batch of ``sequences`` generated
together; each sequence counts as a request, with the batch's times), as vLLM's benchmark
(``vllm bench serve``) defines them:

- TTFT: first token - arrival (closed loop: the request's start; open loop: its scheduled
  arrival, so queueing counts);
- TPOT: (last token - first token) / (output tokens - 1), requests of one token left out;
- ITL: every gap between two consecutive token arrivals of a request (an endpoint's chunk of
  several tokens is one arrival);
- end-to-end (``e2e_ms_*``, and NeuronPerf's ``latency_ms_*``): last token - arrival;
- ``output_tokens_per_s``: tokens that arrived inside the window, per second (per window, then
  their mean); ``requests_per_s``: requests per second, each counted in the windows its tokens
  arrived in by the share of its tokens there (so a request that outlasts a window does not
  leave the windows before its end empty); ``prefill_tokens_per_s``: prompt tokens of the
  requests whose first token arrived inside the window, per second;
- ``goodput``: requests per second (as ``requests_per_s``) that met every SLO given
  (``slo_ttft_ms``, ``slo_tpot_ms``); ``goodput_ratio``: their share of the requests that
  finished inside the window.

Distributions (TTFT, TPOT, ITL, e2e) take every request that finished, the one that overran the
closed loop's window and those served while an open loop drained included, as the server
scenario does. docs/generative.md compares these with AIPerf's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from pytest_neuronperf.engine import serving
from pytest_neuronperf.engine import windows as stats

TTFT_PERCENTILES = (50, 90, 99)
ITL_PERCENTILES = (50, 99)


@dataclass(frozen=True)
class Requests:
    """Every copy's requests together: one row per request (served or not)."""

    arrival: np.ndarray
    start: np.ndarray
    end: np.ndarray
    tokens: np.ndarray
    prompt: np.ndarray
    sequences: np.ndarray
    first: np.ndarray
    """First token's arrival (ns; -1 without tokens)."""
    last: np.ndarray
    copy: np.ndarray
    stamps: np.ndarray
    """Every token arrival, request after request."""
    stamp_request: np.ndarray
    """The row of each stamp."""

    @classmethod
    def join(cls, generated: Sequence[Any]) -> Requests:
        """From each copy's ``Generated`` message (several slices of one copy join too)."""
        def cat(name: str) -> np.ndarray:
            parts = [np.asarray(getattr(g, name), np.int64) for g in generated]
            return np.concatenate(parts) if parts else np.empty(0, np.int64)

        counts = cat("stamp_counts")
        stamps = cat("stamps_ns")
        offsets = np.concatenate([[0], np.cumsum(counts)[:-1]]).astype(np.int64)
        has = counts > 0
        first = np.full(counts.size, -1, np.int64)
        last = np.full(counts.size, -1, np.int64)
        first[has] = stamps[offsets[has]]
        last[has] = stamps[offsets[has] + counts[has] - 1]
        copy = np.concatenate([np.full(len(g.arrival_ns), i) for i, g in enumerate(generated)]
                              or [np.empty(0, np.int64)])
        return cls(cat("arrival_ns"), cat("start_ns"), cat("end_ns"), cat("tokens"),
                   cat("prompt_tokens"), cat("sequences"), first, last, copy, stamps,
                   np.repeat(np.arange(counts.size), counts))

    @property
    def done(self) -> np.ndarray:
        """Requests that were served and produced a token."""
        return (self.end >= 0) & (self.last >= 0)

    def gaps_ns(self) -> tuple[np.ndarray, np.ndarray]:
        """Every inter-token gap inside a request (ITL), never across two requests, and the
        row each belongs to."""
        if self.stamps.size < 2:
            return np.empty(0, np.int64), np.empty(0, np.int64)
        same = self.stamp_request[1:] == self.stamp_request[:-1]
        return np.diff(self.stamps)[same], self.stamp_request[1:][same]

    def tpot_ns(self) -> np.ndarray:
        """(last - first) / (tokens - 1) per request; NaN for one token or none."""
        with np.errstate(divide="ignore", invalid="ignore"):
            tpot = (self.last - self.first).astype(np.float64) / (self.tokens - 1)
        return np.where((self.tokens > 1) & (self.last >= 0), tpot, np.nan)

    def stamp_weights(self) -> np.ndarray:
        """Tokens each arrival stands for: its request's tokens x sequences / arrivals."""
        counts = np.bincount(self.stamp_request, minlength=self.tokens.size)
        per_request: np.ndarray = np.where(
            counts > 0, self.tokens * self.sequences / np.maximum(counts, 1), 0.0)
        weights: np.ndarray = per_request[self.stamp_request]
        return weights


@dataclass(frozen=True)
class Slos:
    """What makes a request good (None: no limit)."""

    ttft_ms: float | None = None
    tpot_ms: float | None = None

    @property
    def given(self) -> bool:
        """Any SLO set (else there is no goodput)."""
        return self.ttft_ms is not None or self.tpot_ms is not None

    def good(self, ttft_ns: np.ndarray, tpot_ns: np.ndarray) -> np.ndarray:
        """Requests within every SLO (a one-token request has no TPOT to miss)."""
        ok = np.ones(ttft_ns.size, dtype=bool)
        if self.ttft_ms is not None:
            ok &= ttft_ns <= self.ttft_ms * 1e6
        if self.tpot_ms is not None:
            ok &= ~(tpot_ns > self.tpot_ms * 1e6)  # NaN (one token) meets it
        return ok


def percentiles_ms(values_ns: np.ndarray, weights: np.ndarray, name: str,
                   levels: Sequence[int]) -> dict[str, float | None]:
    """``{name}_ms_p{level}`` of values weighted by whole counts (sequences); None if empty."""
    keep = np.isfinite(values_ns)
    values = np.repeat(values_ns[keep].astype(np.float64) / 1e6, weights[keep])
    if values.size == 0:
        return {f"{name}_ms_p{p}": None for p in levels}
    found = np.percentile(values, levels)
    return {f"{name}_ms_p{p}": float(v) for p, v in zip(levels, found, strict=True)}


def sketch_ms(values_ns: np.ndarray, weights: np.ndarray) -> dict[str, list[float]]:
    """The distribution's CDF sketch (``windows.latency_sketch``) of weighted values."""
    keep = np.isfinite(values_ns)
    return stats.latency_sketch(np.repeat(values_ns[keep], weights[keep]))


def window_grid(start_ns: int, duration_s: float) -> tuple[float, int]:
    """(window length in ns, whole windows): the closed loop's windows (``engine.windows``)."""
    length_s = stats.window_length_s(duration_s)
    return length_s * 1e9, max(1, int(math.floor(duration_s / length_s + 1e-9)))


def window_index(times_ns: np.ndarray, start_ns: int, length_ns: float, count: int
                 ) -> np.ndarray:
    """Each time's window (-1: outside every whole window)."""
    index = np.floor((times_ns - start_ns) / length_ns).astype(np.int64)
    return np.where((times_ns >= start_ns) & (index < count), index, -1)


def per_window(index: np.ndarray, values: np.ndarray, count: int, level: float) -> list[float]:
    """The ``level`` percentile of the values that fall in each window (NaN: none)."""
    out = []
    for k in range(count):
        inside = values[(index == k) & np.isfinite(values)]
        out.append(float(np.percentile(inside, level)) if inside.size else math.nan)
    return out


def token_windows(requests: Requests, start_ns: int, duration_s: float, slos: Slos
                  ) -> dict[str, list[float]]:
    """Per whole window: output tokens/s; requests/s (``throughput``) and, with SLOs, goodput,
    each request counted in the windows its tokens arrived in by the share of its tokens there
    (as the closed loop spreads a call's batch over the windows it spans); the p99 of TTFT over
    the requests whose first token arrived in the window, and of TPOT over those that streamed
    in it (NaN: none)."""
    length_ns, count = window_grid(start_ns, duration_s)
    length_s = length_ns / 1e9
    stamp_window = window_index(requests.stamps, start_ns, length_ns, count)
    inside = stamp_window >= 0
    where, rows = stamp_window[inside], requests.stamp_request[inside]

    def per_second(weights: np.ndarray) -> list[float]:
        return [float(w / length_s) for w in np.bincount(where, weights=weights,
                                                          minlength=count)[:count]]

    counts = np.bincount(requests.stamp_request, minlength=requests.tokens.size)
    share = requests.sequences / np.maximum(counts, 1)  # of a request, per token arrival
    done = requests.done
    ttft = np.where(done, requests.first - requests.arrival, np.nan).astype(np.float64) / 1e6
    tpot = requests.tpot_ns() / 1e6
    first_window = np.where(done, window_index(requests.first, start_ns, length_ns, count), -1)
    active = np.unique(np.stack([where, rows]), axis=1) if where.size else np.zeros((2, 0),
                                                                                   np.int64)
    series: dict[str, list[float]] = {
        "output_tokens_per_s": per_second(requests.stamp_weights()[inside]),
        "throughput": per_second(share[rows]),
        "ttft_ms_p99": per_window(first_window, ttft, count, 99),
        "tpot_ms_p99": per_window(active[0], tpot[active[1]], count, 99),
    }
    if slos.given:
        good = slos.good(ttft * 1e6, tpot * 1e6) & done
        series["goodput"] = per_second(np.where(good, share, 0.0)[rows])
    return series


def generate_fields(generated: Sequence[Any], start_ns: int, duration_s: float, slos: Slos
                    ) -> dict[str, Any]:
    """The report keys of a generate run: NeuronPerf's (a call is a request, its latency the
    end-to-end time) and the token metrics (module docstring)."""
    requests = Requests.join(generated)
    done = requests.done
    if not done.any():
        raise ValueError(f"no request finished within the {duration_s:g} s window: one request "
                         f"takes longer than the duration; raise duration or lower "
                         f"output_tokens")
    end_ns = start_ns + int(duration_s * 1e9)
    seqs = requests.sequences
    ttft = (requests.first - requests.arrival).astype(np.float64)
    e2e = (requests.last - requests.arrival).astype(np.float64)
    tpot = requests.tpot_ns()
    gaps, gap_rows = requests.gaps_ns()
    windows = token_windows(requests, start_ns, duration_s, slos)
    in_window = done & (requests.last >= start_ns) & (requests.last <= end_ns)
    first_in = done & (requests.first >= start_ns) & (requests.first <= end_ns)
    known_prompt = first_in & (requests.prompt >= 0)
    weights = np.where(done, seqs, 0)
    fields: dict[str, Any] = {
        "total_infs": int(seqs[in_window].sum()),
        "throughput_avg": float(np.mean(windows["throughput"])),
        "throughput_peak": max(windows["throughput"]),
        **stats.latency_summary(np.repeat(e2e[done], seqs[done]).astype(np.int64)),
        "latency_sketch": sketch_ms(e2e[done], seqs[done]),
        **percentiles_ms(np.where(done, ttft, np.nan), weights, "ttft", TTFT_PERCENTILES),
        **percentiles_ms(np.where(done, tpot, np.nan), weights, "tpot", TTFT_PERCENTILES),
        **percentiles_ms(gaps.astype(np.float64), seqs[gap_rows], "itl", ITL_PERCENTILES),
        **percentiles_ms(np.where(done, e2e, np.nan), weights, "e2e", ITL_PERCENTILES),
        "ttft_sketch": sketch_ms(ttft[done], seqs[done]),
        "tpot_sketch": sketch_ms(tpot[done], seqs[done]),
        "output_tokens_per_s": float(np.mean(windows["output_tokens_per_s"])),
        "requests_per_s": float(np.mean(windows["throughput"])),
        "prefill_tokens_per_s": (float(requests.prompt[known_prompt].sum()) / duration_s
                                 if known_prompt.any() else None),
        "requests": int(seqs[done].sum()),
        "output_tokens_avg": float(np.average(requests.tokens[done], weights=seqs[done])),
        "windows": windows,
    }
    if slos.given:
        good = slos.good(ttft, tpot) & in_window
        counted = int(seqs[in_window].sum())
        fields.update(goodput=float(np.mean(windows["goodput"])),
                      goodput_ratio=float(seqs[good].sum()) / counted if counted else 0.0)
    return fields


def open_loop_fields(generated: Sequence[Any], start_ns: int, duration_s: float
                     ) -> dict[str, Any]:
    """The open loop's keys (``engine.serving``'s): achieved rate, queueing, overload."""
    requests = Requests.join(generated)
    end_ns = start_ns + int(duration_s * 1e9)
    queries = serving.Queries(requests.arrival, requests.start, requests.end, requests.copy)
    served = requests.start >= 0
    queue_ms = (requests.start - requests.arrival)[served].astype(np.float64) / 1e6
    offered = len(requests.arrival)
    backlog = serving.backlog_at(queries, end_ns)
    unserved = int((~served).sum())
    half = serving.backlog_at(queries, start_ns + int(duration_s * 0.5e9))
    finished = served & (requests.end >= start_ns) & (requests.end <= end_ns)
    return {
        "achieved_qps": float(finished.sum()) / duration_s,
        "offered_queries": offered,
        "queue_ms_p50": float(np.percentile(queue_ms, 50)) if queue_ms.size else None,
        "queue_ms_p99": float(np.percentile(queue_ms, 99)) if queue_ms.size else None,
        "backlog": backlog,
        "unserved": unserved,
        "overloaded": serving.is_overloaded(offered, backlog, unserved, half),
    }


# -- paired slices ------------------------------------------------------------------------------


SLICE_SERIES = ("output_tokens_per_s", "ttft_ms_p99", "tpot_ms_p99")
"""Per-slice figures a paired generate run records per side (gated metrics' names)."""


def slice_figures(generated: Sequence[Any], start_ns: int, end_ns: int) -> dict[str, float]:
    """One slice of one side: tokens per second while it ran (from its first request's start,
    as ``paired.copy_rate`` counts calls), TTFT and TPOT p99 of its requests."""
    requests = Requests.join(generated)
    done = requests.done
    if not done.any():
        return {**{name: math.nan for name in SLICE_SERIES}, "calls": 0}
    begin = max(start_ns, int(requests.start[requests.start >= 0].min()))
    inside = (requests.stamps >= begin) & (requests.stamps <= end_ns)
    span_s = max(end_ns - begin, 1) / 1e9
    seqs = np.where(done, requests.sequences, 0)
    ttft = np.where(done, requests.first - requests.arrival, np.nan).astype(np.float64)
    return {
        "output_tokens_per_s": float(requests.stamp_weights()[inside].sum()) / span_s,
        "ttft_ms_p99": p99_ms(ttft, seqs),
        "tpot_ms_p99": p99_ms(requests.tpot_ns(), seqs),
        "calls": int(seqs.sum()),
    }


def p99_ms(values_ns: np.ndarray, weights: np.ndarray) -> float:
    """The weighted p99 in ms (NaN when there is no value)."""
    value = percentiles_ms(values_ns, weights, "x", (99,))["x_ms_p99"]
    return math.nan if value is None else value


def side_metrics(generated: Sequence[Any], figures: Sequence[dict[str, float]]
                 ) -> dict[str, Any]:
    """A paired side's whole-run figures: the distributions over every slice's requests, and
    tokens/s as the mean of the slices' rates."""
    requests = Requests.join(generated)
    done = requests.done
    seqs = np.where(done, requests.sequences, 0)
    e2e = (requests.last - requests.arrival).astype(np.float64)
    rates = [f["output_tokens_per_s"] for f in figures if math.isfinite(f["output_tokens_per_s"])]
    return {
        "total_infs": int(seqs.sum()),
        "output_tokens_per_s": float(np.mean(rates)) if rates else math.nan,
        **stats.latency_summary(np.repeat(e2e[done], seqs[done]).astype(np.int64)),
        **percentiles_ms(np.where(done, (requests.first - requests.arrival).astype(np.float64),
                                  np.nan), seqs, "ttft", TTFT_PERCENTILES),
        **percentiles_ms(requests.tpot_ns(), seqs, "tpot", TTFT_PERCENTILES),
    }
