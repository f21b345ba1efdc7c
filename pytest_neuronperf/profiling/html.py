"""A configuration's profile in the HTML report: what got slower, the side-by-side table of
base and head per operator and Python frame, and a differential flame graph.

The flame graph is inline SVG (no script, no network): one box per Python call path, as wide
as the larger of its base and head time per inference (a frame that is gone stays visible),
red where the head spends more time on that path, blue where it spends less, grey where they
agree; hovering a box shows both times. ``reporting.html`` calls :func:`profile_section`.
"""

from __future__ import annotations

import html
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pytest_neuronperf import formatting
from pytest_neuronperf.profiling.diff import count, ms, signed_ms
from pytest_neuronperf.profiling.explain import evidence

WIDTH = 1160
ROW_H = 17
MIN_BOX_PX = 0.5
CHAR_PX = 6.6
TABLE_ROWS = 15
QUIET_SHARE = 0.03
QUIET_CHANGE = 0.25
STYLE = """
.np-profile table td.key { text-align: left; font-family: monospace; max-width: 560px;
  overflow-wrap: anywhere; }
.np-profile tr.slower td { background: #fde7e7; } .np-profile tr.faster td { background: #e5effd; }
.np-profile pre { font-size: 12px; background: #f7f7f7; padding: 6px; white-space: pre-wrap; }
.np-profile svg text { font: 11px monospace; pointer-events: none; }
"""


def profile_section(report: Mapping[str, Any]) -> str:
    """The profile of one configuration (empty when it has none)."""
    profile = report.get("profile")
    if not isinstance(profile, Mapping):
        return ""
    parts = [f"<div class='np-profile'><style>{STYLE}</style>",
             "<h4>profile: what got slower</h4>",
             f"<pre>{_e(chr(10).join(evidence(profile)))}</pre>"]
    if profile.get("status") == "ok":
        for name, changes in (profile.get("changes") or {}).items():
            parts.append(side_by_side(name, changes, str(profile.get("base_from"))))
        if not profile.get("changes"):
            for name, table in ((profile.get("head") or {}).get("tables") or {}).items():
                parts.append(head_table(name, table))
        stacks_head = (profile.get("head") or {}).get("stacks") or []
        stacks_base = (profile.get("base") or {}).get("stacks") or []
        if stacks_head or stacks_base:
            parts += ["<h4>differential flame graph (Python frames, time per inference; red: "
                      "more time in the head, blue: less)</h4>",
                      flame_svg(stacks_base, stacks_head, profile.get("base") is not None)]
        parts.append(trace_links(profile.get("traces") or []))
    parts.append("</div>")
    return "\n".join(parts)


def side_by_side(name: str, changes: Sequence[Mapping[str, Any]], base_from: str) -> str:
    """Base and head per key, the largest changes first (significant ones marked)."""
    rows = [f"<table><caption style='text-align:left'>{_e(name)}: base = {_e(base_from)}"
            f"</caption><tr><th>{_e(name[:-1] if name.endswith('s') else name)}</th>"
            "<th>base calls</th><th>base ms/call</th><th>head calls</th><th>head ms/call</th>"
            "<th>Δ ms/inference</th><th>change</th></tr>"]
    for change in changes[:TABLE_ROWS]:
        b_calls, h_calls = float(change["base_calls"]), float(change["head_calls"])
        b_call = change["base_ns"] / b_calls if b_calls else math.nan
        h_call = change["head_ns"] / h_calls if h_calls else math.nan
        css = ""
        if change["significant"]:
            css = " class='slower'" if change["delta_ns"] > 0 else " class='faster'"
        verdict = change["kind"] + (" (significant)" if change["significant"] else "")
        cells = [change["key"], count(b_calls), ms(b_call), count(h_calls), ms(h_call),
                 signed_ms(change["delta_ns"]), verdict]
        rows.append(f"<tr{css}><td class='key'>{_e(cells[0])}</td>"
                    + "".join(f"<td>{_e(c)}</td>" for c in cells[1:]) + "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def head_table(name: str, table: Mapping[str, Any]) -> str:
    """A head-only profile's largest keys."""
    ranked = sorted((table.get("rows") or {}).items(), key=lambda item: -item[1][1])
    rows = [f"<table><caption style='text-align:left'>{_e(name)} (head only)</caption><tr>"
            "<th>key</th><th>calls</th><th>ms/call</th><th>ms/inference</th></tr>"]
    for key, (calls, ns, _, _) in ranked[:TABLE_ROWS]:
        rows.append(f"<tr><td class='key'>{_e(key)}</td><td>{_e(count(calls))}</td>"
                    f"<td>{_e(ms(ns / calls if calls else math.nan))}</td><td>{_e(ms(ns))}</td>"
                    "</tr>")
    rows.append("</table>")
    return "\n".join(rows)


def trace_links(traces: Sequence[str]) -> str:
    """Links to the raw traces (Chrome trace JSON opens in Perfetto or chrome://tracing)."""
    if not traces:
        return ""
    items = "".join(f"<li><a href='{_e(Path(t).absolute().as_uri())}'>{_e(t)}</a></li>"
                    for t in traces)
    return (f"<p class='note'>raw traces (Chrome trace JSON: open in ui.perfetto.dev or "
            f"chrome://tracing; .pstats: snakeviz or python -m pstats):</p><ul>{items}</ul>")


# -- the flame graph ----------------------------------------------------------------------------


@dataclass
class Node:
    """One call path: its own time per inference on each side, and its callees."""

    name: str
    own: list[float] = field(default_factory=lambda: [0.0, 0.0])
    children: dict[str, Node] = field(default_factory=dict)

    def total(self, side: int) -> float:
        """Time on ``side`` (0 base, 1 head) spent in this path and below it."""
        return self.own[side] + sum(c.total(side) for c in self.children.values())

    def width(self) -> float:
        """Room the box needs: the larger own time, plus its callees' boxes."""
        return max(self.own) + sum(c.width() for c in self.children.values())


def stack_tree(base: Sequence[Sequence[Any]], head: Sequence[Sequence[Any]]) -> Node:
    """Both sides' ``[[frame, ...], ns]`` stacks merged into one tree."""
    root = Node("all")
    for side, stacks in ((0, base), (1, head)):
        for path, ns in stacks:
            node = root
            for frame in path:
                node = node.children.setdefault(str(frame), Node(str(frame)))
            node.own[side] += float(ns)
    return root


def colour(node: Node, scale: float, compared: bool) -> str:
    """Red for more time in the head, blue for less, deeper as the change is a larger share of
    an inference; grey for changes of less than ``QUIET_SHARE`` of it or ``QUIET_CHANGE`` of
    the path (what a busy machine does to a short window)."""
    if not compared:
        return "#f4a460"
    before, after = node.total(0), node.total(1)
    delta = after - before
    if scale <= 0 or abs(delta) < QUIET_SHARE * scale or (
            abs(delta) < QUIET_CHANGE * max(before, after)):
        return "#d9d9d9"
    strength = min(1.0, abs(delta) / scale * 5)
    fade = int(230 - 170 * strength)
    return f"rgb(230,{fade},{fade})" if delta > 0 else f"rgb({fade},{fade},230)"


def flame_svg(base: Sequence[Sequence[Any]], head: Sequence[Sequence[Any]],
              compared: bool) -> str:
    """The differential flame graph as inline SVG (root at the top)."""
    root = stack_tree(base, head)
    total = root.width()
    if total <= 0:
        return ""
    boxes: list[str] = []
    depth = [0]

    def draw(node: Node, x: float, level: int) -> None:
        width_px = node.width() / total * WIDTH
        if width_px < MIN_BOX_PX:
            return
        depth[0] = max(depth[0], level)
        before, after = node.total(0), node.total(1)
        change = f" ({formatting.percent(after / before - 1)})" if compared and before > 0 else ""
        tip = (f"{node.name}\nbase {ms(before)} ms -> head {ms(after)} ms per inference{change}"
               if compared else f"{node.name}\n{ms(after)} ms per inference")
        y = level * ROW_H
        label = node.name[: int((width_px - 4) / CHAR_PX)] if width_px > 3 * CHAR_PX else ""
        boxes.append(f"<g><title>{_e(tip)}</title><rect x='{x:.1f}' y='{y}' "
                     f"width='{max(width_px - 0.5, 0.5):.1f}' height='{ROW_H - 1}' "
                     f"fill='{colour(node, total, compared)}' stroke='#fff' stroke-width='0.3'/>"
                     + (f"<text x='{x + 2:.1f}' y='{y + ROW_H - 5}'>{_e(label)}</text>"
                        if label else "") + "</g>")
        child_x = x  # callees from the left; the path's own time is the uncovered rest
        for child in sorted(node.children.values(), key=lambda c: c.name):
            draw(child, child_x, level + 1)
            child_x += child.width() / total * WIDTH

    draw(root, 0.0, 0)
    height = (depth[0] + 1) * ROW_H
    return (f"<svg xmlns='http://www.w3.org/2000/svg' width='{WIDTH}' height='{height}' "
            f"viewBox='0 0 {WIDTH} {height}' role='img' aria-label='differential flame graph'>"
            + "".join(boxes) + "</svg>")


def _e(text: str) -> str:
    return html.escape(str(text), quote=True)
