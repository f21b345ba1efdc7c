"""Raw profiles as tables: per key, the calls and the self time (ns) a window recorded.

A table row is ``[key, calls, self_ns, device_ns]``. Self time is an event's duration minus
the durations of the events of the same kind nested directly inside it (an operator that calls
other operators keeps only its own time), so the rows of one window add up to the time spent
in them once. Sources:

- torch: the Chrome trace the profiler writes (``cpu_op`` events; a GPU kernel's time goes to
  the operator that launched it, as ``device_ns``). The key is the operator and its input
  shapes, ``aten::addmm [256] [1x512] [512x256]``.
- TensorFlow: the XSpace protobuf of ``tf.profiler`` (eager operations by type, graph
  operations by type and name), also converted to a Chrome trace for Perfetto.
- Python: cProfile's statistics: per function its calls and own time, and the call stacks
  (``stacks``) rebuilt from its caller edges, as snakeviz and gprof do.

No framework is imported here: the XSpace comes already parsed.
"""

from __future__ import annotations

import heapq
import itertools
import json
import os
import statistics
import types
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

Row = list[Any]
"""``[key, calls, self_ns, device_ns]``."""

DEVICE_CATEGORIES = ("kernel", "gpu_memcpy", "gpu_memset")
"""Chrome trace categories of work on a GPU, attributed to the operator that launched it."""
STACK_MIN_SHARE = 0.002
"""Python stacks whose self time is below this share of the window are left out."""
STACK_EXPANSIONS = 4000
STACK_MAX_DEPTH = 60
STACK_LIMIT = 400
PROFILER_FRAMES = ("<method 'disable' of '_lsprof.Profiler' objects>",)


# -- nesting ------------------------------------------------------------------------------------


def self_times(spans: Sequence[tuple[float, float]]) -> list[float]:
    """Self time of each ``(start, duration)`` span of one thread: its duration minus those of
    the spans directly inside it (spans nest or follow each other, as on a call stack)."""
    order = sorted(range(len(spans)), key=lambda i: (spans[i][0], -spans[i][1]))
    own = [float(duration) for _, duration in spans]
    open_spans: list[tuple[float, int]] = []  # (end, index)
    for index in order:
        start, duration = spans[index]
        while open_spans and start >= open_spans[-1][0]:
            open_spans.pop()
        if open_spans:
            own[open_spans[-1][1]] -= duration
        open_spans.append((start + duration, index))
    return [max(0.0, value) for value in own]


def add_row(rows: dict[str, Row], key: str, self_ns: float, device_ns: float = 0.0,
            calls: int = 1) -> None:
    """Count one call of ``key``."""
    row = rows.setdefault(key, [key, 0, 0.0, 0.0])
    row[1] += calls
    row[2] += self_ns
    row[3] += device_ns


def typical_rows(calls: Mapping[str, list[float]], device: Mapping[str, float]) -> list[Row]:
    """Rows from every call's self time: the median call's time times the calls. On a busy
    machine a call that was preempted carries milliseconds that are not the operator's; the
    median leaves them out (the sum of a window's rows is then not its wall time)."""
    rows = []
    for key, own in calls.items():
        middle = statistics.median(own) if own else 0.0
        rows.append([key, len(own), middle * len(own), float(device.get(key, 0.0))])
    rows += [[key, 0, 0.0, float(ns)] for key, ns in device.items() if key not in calls]
    return rows


# -- torch: Chrome trace ------------------------------------------------------------------------


def shape_text(dims: Any) -> str:
    """``[[512], [1, 256], []]`` as ``[512] [1x256]`` (scalars left out)."""
    if not isinstance(dims, list):
        return ""
    parts = []
    for dim in dims:
        if isinstance(dim, list) and dim and all(isinstance(d, int) for d in dim):
            parts.append("[" + "x".join(str(d) for d in dim) + "]")
        elif isinstance(dim, list) and dim:
            parts.append("[" + " ".join(filter(None, (shape_text([d]) for d in dim))) + "]")
    return " ".join(parts)


def operator_key(name: str, dims: Any) -> str:
    """An operator and its input shapes: ``aten::addmm [256] [1x512] [512x256]``."""
    shapes = shape_text(dims)
    return f"{name} {shapes}" if shapes else name


def chrome_events(trace: Any) -> list[dict[str, Any]]:
    """The complete (``ph: X``) events of a Chrome trace (an object or a bare list)."""
    events = trace.get("traceEvents", []) if isinstance(trace, dict) else trace
    if not isinstance(events, list):
        return []
    return [e for e in events if isinstance(e, dict) and e.get("ph") == "X"
            and isinstance(e.get("ts"), int | float) and isinstance(e.get("dur"), int | float)]


def torch_table(trace: Any) -> list[Row]:
    """Rows of a torch profiler's Chrome trace: operators (``cpu_op``) with their shapes; the
    device time of the kernels each launched (matched by ``External id``)."""
    events = chrome_events(trace)
    ops = [e for e in events if e.get("cat") == "cpu_op"]
    threads: dict[tuple[Any, Any], list[dict[str, Any]]] = {}
    for event in ops:
        threads.setdefault((event.get("pid"), event.get("tid")), []).append(event)
    calls: dict[str, list[float]] = {}
    launched: dict[Any, str] = {}
    for thread in threads.values():
        owns = self_times([(float(e["ts"]), float(e["dur"])) for e in thread])
        for event, own_us in zip(thread, owns, strict=True):
            args = event.get("args") or {}
            key = operator_key(str(event.get("name", "?")), args.get("Input Dims"))
            calls.setdefault(key, []).append(own_us * 1000.0)
            if "External id" in args:
                launched[args["External id"]] = key
    device: dict[str, float] = {}
    for event in events:
        if event.get("cat") not in DEVICE_CATEGORIES:
            continue
        key = launched.get((event.get("args") or {}).get("External id"),
                           f"{event.get('cat')}: {event.get('name', '?')}")
        device[key] = device.get(key, 0.0) + float(event["dur"]) * 1000.0
    return typical_rows(calls, device)


def read_chrome_trace(path: str | os.PathLike[str]) -> Any:
    """A Chrome trace file as JSON."""
    with open(path, encoding="utf-8") as stream:
        return json.load(stream)


# -- TensorFlow: XSpace -------------------------------------------------------------------------


def stat_value(stat: Any, names: Mapping[int, Any]) -> Any:
    """The value of one XStat (a reference names another stat metadata's name)."""
    kind = stat.WhichOneof("value")
    if kind is None:
        return None
    if kind == "ref_value":
        ref = names.get(stat.ref_value)
        return ref.name if ref is not None else stat.ref_value
    value = getattr(stat, kind)
    return value.decode(errors="replace") if isinstance(value, bytes) else value


def stats_of(stats: Iterable[Any], names: Mapping[int, Any]) -> dict[str, Any]:
    """XStats as a name -> value dict."""
    return {names[s.metadata_id].name if s.metadata_id in names else str(s.metadata_id):
            stat_value(s, names) for s in stats}


def xspace_operator(metadata: Any, stats: Mapping[str, Any]) -> str | None:
    """The operator an XEvent stands for, or None for runtime bookkeeping events: an eager
    operation by type (``MatMul``), a graph operation by type and name
    (``_FusedMatMul sequential/dense/Relu``); a function call is a container, not an operator."""
    if "eager_op" in stats:
        return None if stats.get("is_func") else str(stats["eager_op"])
    name, op_type = str(metadata.name), str(metadata.display_name)
    if op_type and name.endswith(":" + op_type):
        return f"{op_type} {name[: -len(op_type) - 1]}"
    if "tf_op" in stats:
        return str(stats["tf_op"])
    return None


def xspace_table(space: Any) -> list[Row]:
    """Rows of a TensorFlow profile: every operator event of the host and device planes."""
    calls: dict[str, list[float]] = {}
    device_ns: dict[str, float] = {}
    for plane in space.planes:
        names = plane.stat_metadata
        device = plane.name.startswith("/device:")
        for line in plane.lines:
            found: list[tuple[str, float, float]] = []
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                stats = {**stats_of(metadata.stats, names), **stats_of(event.stats, names)}
                key = xspace_operator(metadata, stats)
                if key is not None:
                    found.append((key, float(event.offset_ps), float(event.duration_ps)))
            owns = self_times([(start, duration) for _, start, duration in found])
            for (key, _, _), own_ps in zip(found, owns, strict=True):
                if device:
                    device_ns[key] = device_ns.get(key, 0.0) + own_ps / 1000.0
                else:
                    calls.setdefault(key, []).append(own_ps / 1000.0)
    return typical_rows(calls, device_ns)


def xspace_chrome_trace(space: Any) -> dict[str, Any]:
    """An XSpace as a Chrome trace (Perfetto and chrome://tracing open it): one process per
    plane, one thread per line, every event with its stats as ``args``."""
    events: list[dict[str, Any]] = []
    for pid, plane in enumerate(space.planes, 1):
        names = plane.stat_metadata
        events.append({"ph": "M", "name": "process_name", "pid": pid, "args": {"name": plane.name}})
        for tid, line in enumerate(plane.lines, 1):
            events.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                           "args": {"name": line.display_name or line.name}})
            base_us = line.timestamp_ns / 1000.0
            for event in line.events:
                metadata = plane.event_metadata[event.metadata_id]
                args = {**stats_of(metadata.stats, names), **stats_of(event.stats, names)}
                events.append({"ph": "X", "name": metadata.display_name or metadata.name,
                               "pid": pid, "tid": tid, "ts": base_us + event.offset_ps / 1e6,
                               "dur": event.duration_ps / 1e6,
                               "args": {k: v for k, v in args.items()
                                        if isinstance(v, str | int | float)}})
    return {"traceEvents": events, "displayTimeUnit": "ns"}


# -- Python: cProfile ---------------------------------------------------------------------------


def short_file(filename: str, sys_path: Sequence[str]) -> str:
    """A source file relative to the ``sys.path`` entry it was imported from (so the same
    module has one name in the head's tree and in a base revision's tree)."""
    if not os.path.isabs(filename):
        return filename
    best = ""
    for entry in sys_path:
        root = os.path.abspath(entry or ".")
        if len(root) > len(best) and filename.startswith(root.rstrip(os.sep) + os.sep):
            best = root
    return os.path.relpath(filename, best) if best else Path(filename).name


def qualified_names(entries: Iterable[Any]) -> dict[tuple[str, int, str], str]:
    """``{(file, line, name): qualified name}`` of the functions in cProfile's raw entries
    (``Profile.getstats()``: their ``code`` is the code object, which knows its qualified name;
    ``pstats`` keeps only the short name)."""
    found: dict[tuple[str, int, str], str] = {}
    for entry in entries:
        code = getattr(entry, "code", None)
        if isinstance(code, types.CodeType):
            found[(code.co_filename, code.co_firstlineno, code.co_name)] = code.co_qualname
    return found


def frame_names(functions: Iterable[tuple[str, int, str]], sys_path: Sequence[str],
                qualnames: Mapping[tuple[str, int, str], str]) -> dict[tuple[str, int, str], str]:
    """A readable, stable name per cProfile function: its qualified name and file,
    ``Linear.forward (torch/nn/modules/linear.py)``; a built-in keeps its own
    (``<built-in method time.sleep>``). Names do not depend on line numbers (the base and head
    of a change are matched even when code above moved); where two functions of one file would
    share a name, their lines tell them apart."""
    plain: dict[tuple[str, int, str], str] = {}
    for function in functions:
        filename, line, name = function
        if filename == "~":
            plain[function] = name
            continue
        qualified = qualnames.get(function, name)
        plain[function] = f"{qualified} ({short_file(filename, sys_path)})"
    counts: dict[str, int] = {}
    for name in plain.values():
        counts[name] = counts.get(name, 0) + 1
    return {function: (name if counts[name] == 1 or function[0] == "~"
                       else f"{name[:-1]}:{function[1]})")
            for function, name in plain.items()}


def python_table(stats: Mapping[tuple[str, int, str], Any], sys_path: Sequence[str],
                 qualnames: Mapping[tuple[str, int, str], str] | None = None,
                 ) -> tuple[list[Row], list[list[Any]]]:
    """Rows and stacks of cProfile's statistics (``pstats.Stats(...).stats``). A built-in
    (``time.sleep``, a torch operator's binding) gets one row per Python function that calls
    it, ``<built-in method time.sleep> in postprocess (models.py)``: who sleeps is the news."""
    functions = {f: v for f, v in stats.items() if f[2] not in PROFILER_FRAMES}
    names = frame_names(functions, sys_path, qualnames or {})
    rows: dict[str, Row] = {}
    for function, (_, calls, own_s, _, callers) in functions.items():
        known = {c: edge for c, edge in callers.items() if c in functions}
        if function[0] != "~" or not known:
            add_row(rows, names[function], own_s * 1e9, calls=int(calls))
            continue
        for caller, edge in known.items():
            add_row(rows, f"{names[function]} in {names[caller]}", float(edge[2]) * 1e9,
                    calls=int(edge[1]))
    return list(rows.values()), python_stacks(functions, names)


def python_stacks(stats: Mapping[tuple[str, int, str], Any],
                  names: Mapping[tuple[str, int, str], str]) -> list[list[Any]]:
    """``[[frame, ...], self_ns]`` per call path, rebuilt from cProfile's caller edges: a
    function's time along a path is its share of the caller's time through that edge. Paths are
    expanded largest first, at most ``STACK_EXPANSIONS`` of them (a framework's call graph has
    far more paths than time worth showing)."""
    children: dict[tuple[str, int, str], list[tuple[tuple[str, int, str], float]]] = {}
    for callee, (_, _, _, _, callers) in stats.items():
        for caller, edge in callers.items():
            if caller in stats:
                children.setdefault(caller, []).append((callee, float(edge[3])))
    roots = [f for f, v in stats.items() if not any(c in stats for c in v[4])]
    total = sum(float(stats[f][3]) for f in roots) or 1.0
    found: dict[tuple[str, ...], float] = {}
    order = itertools.count()
    todo: list[tuple[float, int, tuple[str, int, str], tuple[str, ...],
                     frozenset[tuple[str, int, str]]]] = [
        (-float(stats[root][3]), next(order), root, (), frozenset({root})) for root in roots]
    heapq.heapify(todo)
    expansions = 0
    while todo and expansions < STACK_EXPANSIONS:
        negative, _, function, path, seen = heapq.heappop(todo)
        expansions += 1
        _, _, own, cumulative, _ = stats[function]
        share = -negative / float(cumulative) if cumulative else 0.0
        here = (*path, names[function])
        found[here] = found.get(here, 0.0) + float(own) * share
        if len(here) >= STACK_MAX_DEPTH:
            continue
        for callee, edge_s in children.get(function, []):
            through = edge_s * share
            if callee not in seen and through >= STACK_MIN_SHARE * total:
                heapq.heappush(todo, (-through, next(order), callee, here, seen | {callee}))
    stacks = sorted(found.items(), key=lambda item: -item[1])
    return [[list(path), seconds * 1e9] for path, seconds in stacks[:STACK_LIMIT]
            if seconds >= STACK_MIN_SHARE * total]
