"""The versioned messages between the parent and its child processes (model copies and the
compile process), on a dedicated pipe.

Every message is one JSON header frame (``send_bytes``) naming the protocol version, the kind
and the message's fields; a ``Timings`` header is followed by one binary frame per timer array.
Nothing travels on stdout, so a model or compiler that prints cannot corrupt results.

Protocol history (bump ``PROTOCOL_VERSION`` on any change, and add a line here):

1. First version. Model process -> parent: ``ready``, ``error``, ``result`` (+ ``2 * n_threads``
   int64 frames: per thread, call end times then call latencies, in ns). Parent -> model
   process: ``go`` (common start and stop times on the shared monotonic clock), ``abort``.
2. Model process -> parent: ``stats`` after ``result`` (the copy's CPU use and peak resident
   memory during the window, and its accuracy-metric states); ``served`` (+ 3 int64 frames: per
   query of the open loop, its scheduled arrival, the start and the end of the call that served
   it, in ns; -1 for never served). Paired schedule: ``go`` carries ``last``. After ``ready`` a
   copy loops: wait for a ``go``, drive from its start to its stop, send a ``result``; it exits
   after answering the ``go`` marked ``last``. A plain run sends one ``go`` with ``last`` true; a
   paired run sends one per slice of the schedule (``engine.paired``). ``result`` carries
   ``cpu_s``, the copy's own user + system CPU time when it sent it (the interference meter's
   end reading).
3. The compile process speaks it too (it had JSON dicts of its own): compile process ->
   parent ``built``, ``compiling``, ``compiled``, ``done``, and ``error`` (``Failed``, which
   gains an optional ``traceback``). ``abort`` removed (nothing sent it: the parent kills).
4. Profile windows (``pytest_neuronperf.profiling``): parent -> model process ``profile`` (a
   window of one profiler, ``operators`` or ``python``, instead of a ``go``; a copy that has
   answered one waits for the next order); model process -> parent ``profiled`` (what the
   window recorded: per key calls and self time, Python stacks, the raw trace's path).
5. Model process -> parent: ``generated`` (generate scenario, in place of ``result`` or
   ``served``; + 8 int64 frames: per request, its arrival (scheduled, or its start in the closed
   loop), start, end, output tokens per sequence, prompt tokens (-1: unknown), sequences and
   token timestamps counted, then every request's token timestamps one after the other, in ns;
   start and end are -1 for a request never served). Timestamps are taken in the copy and
   travel once, after the window: nothing is sent per token.
"""

from __future__ import annotations

import dataclasses
import json
import math
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

import numpy as np

PROTOCOL_VERSION = 5


class ProtocolError(RuntimeError):
    """A peer sent something that is not a message of this protocol version."""


class Refusal(Exception):
    """A fault of the model or its inputs that one sentence explains (a model that yields no
    token, a server that drops the stream): the copy sends the sentence as ``Failed.error`` and
    the traceback apart, so the parent shows the sentence first."""


# --- model process <-> parent ----------------------------------------------------------------

@dataclass(frozen=True)
class Ready:
    """The copy has loaded and warmed up, and waits at the barrier."""

    pid: int
    load_ms: float
    warmup_ms: float
    warmup_calls: int


@dataclass(frozen=True)
class Go:
    """Measure from ``start_ns`` until ``end_ns`` (``time.perf_counter_ns`` clock); after the
    ``go`` marked ``last`` the copy sends its timings and exits."""

    start_ns: int
    end_ns: int
    last: bool = True


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
    """NaN when not measured (it travels as null: strict JSON)."""
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


@dataclass(frozen=True)
class Profile:
    """Profile the next window instead of measuring: ``window`` is ``operators`` (the
    framework's profiler) or ``python`` (Python frames); it lasts ``seconds`` or ``max_calls``
    calls, whichever comes first; the raw trace goes to ``trace_path`` when one is given."""

    window: str
    seconds: float
    max_calls: int
    trace_path: str | None = None


@dataclass(frozen=True)
class Profiled:
    """What one profile window recorded: ``calls`` end-to-end calls in ``seconds``; ``table``
    rows ``[key, calls, self_ns, device_ns]``; ``stacks`` rows ``[[frame, ...], self_ns]``
    (Python windows); ``note`` says why a table is empty (no profiler for this framework)."""

    window: str
    calls: int
    seconds: float
    table: list[list[Any]]
    stacks: list[list[Any]] = dataclasses.field(default_factory=list)
    trace_path: str | None = None
    note: str | None = None


@dataclass(frozen=True)
class Generated:
    """Per request of a copy's token driver (generate scenario), in the order the copy kept
    them: scheduled arrival (closed loop: its start), start and end of the call (-1: never
    served), output tokens per sequence, prompt tokens of the request (-1: unknown), sequences
    generated together, how many token timestamps it has; then all those timestamps (ns)."""

    arrival_ns: np.ndarray
    start_ns: np.ndarray
    end_ns: np.ndarray
    tokens: np.ndarray
    prompt_tokens: np.ndarray
    sequences: np.ndarray
    stamp_counts: np.ndarray
    stamps_ns: np.ndarray
    cpu_s: float = math.nan
    """The copy's user + system CPU time (s, all threads) when it sent these timings."""

    ARRAYS = ("arrival_ns", "start_ns", "end_ns", "tokens", "prompt_tokens", "sequences",
              "stamp_counts", "stamps_ns")


# --- compile process -> parent ---------------------------------------------------------------

@dataclass(frozen=True)
class Built:
    """The compile process has checked its compiler and built the model; tasks follow."""


@dataclass(frozen=True)
class Compiling:
    """The task at ``position`` (in the model index) starts now; its timeout runs from here."""

    position: int


@dataclass(frozen=True)
class Compiled:
    """One task's outcome: the artifact published (``ok``) or why not (``error``)."""

    position: int
    status: str
    filename: str | None
    compile_s: float
    verified: bool = False
    error: str | None = None
    traceback: str | None = None


@dataclass(frozen=True)
class Done:
    """Every task is reported; the compile process exits."""


# --- either child -> parent ------------------------------------------------------------------

@dataclass(frozen=True)
class Failed:
    """The process raised and gives up: ``error`` says why (a model copy puts its traceback
    there; the compile process puts ``Type: message`` there and the traceback apart)."""

    error: str
    traceback: str = ""


Message = (Ready | Failed | Go | Timings | CopyStats | Served | Generated | Profile | Profiled
           | Built | Compiling | Compiled | Done)

KINDS: dict[str, type[Message]] = {
    "ready": Ready, "error": Failed, "go": Go, "result": Timings, "stats": CopyStats,
    "served": Served, "generated": Generated, "profile": Profile, "profiled": Profiled,
    "built": Built, "compiling": Compiling, "compiled": Compiled, "done": Done,
}
"""Wire name of every message class."""
_NAMES = {cls: name for name, cls in KINDS.items()}


def _send_header(conn: Connection, kind: str, fields: dict[str, Any]) -> None:
    conn.send_bytes(json.dumps({"protocol": PROTOCOL_VERSION, "kind": kind, **fields}).encode())


def send(conn: Connection, message: Message) -> None:
    """Write one message to the pipe."""
    if isinstance(message, Timings):
        cpu_s = None if math.isnan(message.cpu_s) else message.cpu_s  # NaN is not JSON
        _send_header(conn, "result", {"threads": len(message.end_ns), "cpu_s": cpu_s})
        for ends, lats in zip(message.end_ns, message.latency_ns, strict=True):
            conn.send_bytes(np.ascontiguousarray(ends, dtype=np.int64).tobytes())
            conn.send_bytes(np.ascontiguousarray(lats, dtype=np.int64).tobytes())
        return
    if isinstance(message, Served):
        _send_header(conn, "served", {})
        for values in (message.arrival_ns, message.start_ns, message.end_ns):
            conn.send_bytes(np.ascontiguousarray(values, dtype=np.int64).tobytes())
        return
    if isinstance(message, Generated):
        cpu_s = None if math.isnan(message.cpu_s) else message.cpu_s
        _send_header(conn, "generated", {"cpu_s": cpu_s})
        for name in Generated.ARRAYS:
            conn.send_bytes(np.ascontiguousarray(getattr(message, name), dtype=np.int64).tobytes())
        return
    fields = {f.name: getattr(message, f.name) for f in dataclasses.fields(message)}
    if isinstance(message, CopyStats) and message.cpu_percent_avg != message.cpu_percent_avg:
        fields["cpu_percent_avg"] = None  # NaN is not JSON
    _send_header(conn, _NAMES[type(message)], fields)


def receive(conn: Connection) -> Message:
    """Read one message; raises :class:`ProtocolError` on a foreign or other-version frame."""
    raw = conn.recv_bytes()
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ProtocolError(f"not a protocol message: {raw[:80]!r}") from exc
    if not isinstance(header, dict) or header.pop("protocol", None) != PROTOCOL_VERSION:
        raise ProtocolError(
            f"expected protocol version {PROTOCOL_VERSION}, got {header!r:.120}"
        )
    kind = header.pop("kind", None)
    cls = KINDS.get(kind) if isinstance(kind, str) else None
    if cls is None:
        raise ProtocolError(f"unknown message kind {kind!r}")
    if cls is Timings:
        threads = header.get("threads")
        if not isinstance(threads, int):
            raise ProtocolError(f"malformed 'result' message: {header!r:.120}")
        ends, lats = [], []
        for _ in range(threads):
            ends.append(np.frombuffer(conn.recv_bytes(), dtype=np.int64))
            lats.append(np.frombuffer(conn.recv_bytes(), dtype=np.int64))
        cpu_s = header.get("cpu_s")
        return Timings(ends, lats, math.nan if cpu_s is None else float(cpu_s))
    if cls is Served:
        arrival, start, end = (np.frombuffer(conn.recv_bytes(), dtype=np.int64) for _ in range(3))
        return Served(arrival, start, end)
    if cls is Generated:
        arrays = {name: np.frombuffer(conn.recv_bytes(), dtype=np.int64)
                  for name in Generated.ARRAYS}
        cpu_s = header.get("cpu_s")
        return Generated(**arrays, cpu_s=math.nan if cpu_s is None else float(cpu_s))
    if cls is CopyStats and header.get("cpu_percent_avg", 0.0) is None:
        header["cpu_percent_avg"] = float("nan")
    try:
        return cls(**header)
    except TypeError as exc:
        raise ProtocolError(f"malformed {kind!r} message: {exc}") from exc
