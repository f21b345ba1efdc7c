"""The versioned messages between the parent and a model process, on a dedicated pipe.

Every message is one JSON header frame (``send_bytes``); a result header is followed by one
binary frame per timer array. Nothing travels on stdout, so a model that prints cannot corrupt
results.

Protocol history (bump ``PROTOCOL_VERSION`` on any change, and add a line here):

1. First version. Worker -> parent: ``ready``, ``error``, ``result`` (+ ``2 * n_threads``
   int64 frames: per thread, call end times then call latencies, in ns). Parent -> worker:
   ``go`` (common start and stop times on the shared monotonic clock), ``abort``.
2. Worker -> parent: ``stats`` after ``result`` (the copy's CPU use and peak resident memory
   during the window, and its accuracy-metric states).
   Worker -> parent: ``served`` (+ 3 int64 frames: per query of the open loop, its scheduled
   arrival, the start and the end of the call that served it, in ns; -1 for never served).
   Paired schedule: ``go`` carries ``last``. After ``ready`` a copy loops: wait for a ``go``,
   drive from its start to its stop, send a ``result``; it exits after answering the ``go``
   marked ``last``. A plain run sends one ``go`` with ``last`` true; a paired run sends one per
   slice of the schedule (``engine.paired``). ``result`` carries ``cpu_s``, the copy's own
   user + system CPU time when it sent it (the interference meter's end reading).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

PROTOCOL_VERSION = 2


class ProtocolError(RuntimeError):
    """A peer sent something that is not a message of this protocol version."""


@dataclass(frozen=True)
class Ready:
    """The copy has loaded and warmed up, and waits at the barrier."""

    pid: int
    load_ms: float
    warmup_ms: float
    warmup_calls: int


@dataclass(frozen=True)
class Failed:
    """The copy raised; ``error`` holds the reason and traceback."""

    error: str


@dataclass(frozen=True)
class Go:
    """Measure from ``start_ns`` until ``end_ns`` (``time.perf_counter_ns`` clock); after the
    ``go`` marked ``last`` the copy sends its timings and exits."""

    start_ns: int
    end_ns: int
    last: bool = True


@dataclass(frozen=True)
class Abort:
    """Stop now and exit."""


@dataclass(frozen=True)
class Timings:
    """Per-call end times and latencies (ns) of every driver thread of one copy."""

    end_ns: list[np.ndarray]
    latency_ns: list[np.ndarray]
    cpu_s: float = math.nan
    """The copy's user + system CPU time (s, all threads) when it sent these timings."""


@dataclass(frozen=True)
class CopyStats:
    """What a copy measured besides timings: resources during the window, metric states."""

    cpu_percent_avg: float
    memory_mb_peak: float
    samples: int
    eval_states: dict[str, Any]
    """Accuracy metric name -> its state (``evaluation``); empty without ``eval_metrics``."""


@dataclass(frozen=True)
class Served:
    """Per query of a copy's open loop (server scenario), in arrival order: scheduled arrival,
    start and end of the call that served it (ns; start and end are -1 if never served)."""

    arrival_ns: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray


Message = Ready | Failed | Go | Abort | Timings | CopyStats | Served


def _finite(value: float) -> float | None:
    """NaN travels as null (strict JSON)."""
    return value if value == value else None


def _send_header(conn: Connection, kind: str, **fields: Any) -> None:
    conn.send_bytes(json.dumps({"protocol": PROTOCOL_VERSION, "kind": kind, **fields}).encode())


def send(conn: Connection, message: Message) -> None:
    """Write one message to the pipe."""
    match message:
        case Ready():
            _send_header(conn, "ready", pid=message.pid, load_ms=message.load_ms,
                         warmup_ms=message.warmup_ms, warmup_calls=message.warmup_calls)
        case Failed():
            _send_header(conn, "error", error=message.error)
        case Go():
            _send_header(conn, "go", start_ns=message.start_ns, end_ns=message.end_ns,
                         last=message.last)
        case Abort():
            _send_header(conn, "abort")
        case CopyStats():
            _send_header(conn, "stats", cpu_percent_avg=_finite(message.cpu_percent_avg),
                         memory_mb_peak=message.memory_mb_peak, samples=message.samples,
                         eval_states=message.eval_states)
        case Timings():
            _send_header(conn, "result", threads=len(message.end_ns), cpu_s=message.cpu_s)
            for ends, lats in zip(message.end_ns, message.latency_ns, strict=True):
                conn.send_bytes(np.ascontiguousarray(ends, dtype=np.int64).tobytes())
                conn.send_bytes(np.ascontiguousarray(lats, dtype=np.int64).tobytes())
        case Served():
            _send_header(conn, "served")
            for values in (message.arrival_ns, message.start_ns, message.end_ns):
                conn.send_bytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())


def receive(conn: Connection) -> Message:
    """Read one message; raises :class:`ProtocolError` on a foreign or other-version frame."""
    raw = conn.recv_bytes()
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a protocol message: {raw[:80]!r}") from exc
    if not isinstance(header, dict) or header.get("protocol") != PROTOCOL_VERSION:
        raise ProtocolError(
            f"expected protocol version {PROTOCOL_VERSION}, got {header!r:.120}"
        )
    match header.get("kind"):
        case "ready":
            return Ready(header["pid"], header["load_ms"], header["warmup_ms"],
                         header["warmup_calls"])
        case "error":
            return Failed(header["error"])
        case "go":
            return Go(header["start_ns"], header["end_ns"], header["last"])
        case "abort":
            return Abort()
        case "stats":
            cpu = header["cpu_percent_avg"]
            return CopyStats(float("nan") if cpu is None else cpu, header["memory_mb_peak"],
                             header["samples"], header["eval_states"])
        case "result":
            ends, lats = [], []
            for _ in range(header["threads"]):
                ends.append(np.frombuffer(conn.recv_bytes(), dtype=np.int64))
                lats.append(np.frombuffer(conn.recv_bytes(), dtype=np.int64))
            return Timings(ends, lats, header["cpu_s"])
        case "served":
            arrival, start, end = (np.frombuffer(conn.recv_bytes(), dtype=np.int64)
                                   for _ in range(3))
            return Served(arrival, start, end)
        case other:
            raise ProtocolError(f"unknown message kind {other!r}")
