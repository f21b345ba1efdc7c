"""The pipe protocol shared by model and compile processes: every message survives the codec,
and anything else is a ProtocolError."""

from __future__ import annotations

import json
import multiprocessing

import numpy as np
import pytest

from pytest_neuronperf.protocol import messages

EXAMPLES = [
    messages.Ready(pid=12, load_ms=1.5, warmup_ms=20.0, warmup_calls=7),
    messages.Go(start_ns=10, end_ns=20),
    messages.Failed("Traceback ..."),
    messages.Failed("RuntimeError: no", traceback="Traceback ...\nRuntimeError: no"),
    messages.Built(),
    messages.Compiling(position=3),
    messages.Compiled(3, "ok", "m_b1.pt", 0.25, verified=True),
    messages.Compiled(4, "error", None, 1.0, error="ValueError: x", traceback="tb"),
    messages.Done(),
    messages.CopyStats(cpu_percent_avg=97.5, memory_mb_peak=120.0, samples=4,
                       eval_states={"accuracy": {"correct": 3, "total": 4}}),
    messages.Profile("operators", 0.2, 2000, "/tmp/head-operators.json"),
    messages.Profile("python", 0.2, 2000),
    messages.Profiled("python", 12, 0.2, [["run (m.py)", 12, 3000.0, 0.0]],
                      [[["run (m.py)"], 3000.0]], "/tmp/head-python.pstats"),
    messages.Profiled("operators", 0, 0.0, [], note="no operator profiler"),
]


@pytest.fixture
def pipe():
    left, right = multiprocessing.Pipe(duplex=True)
    yield left, right
    left.close()
    right.close()


@pytest.mark.parametrize("message", EXAMPLES, ids=lambda m: type(m).__name__)
def test_every_message_round_trips(pipe, message):
    left, right = pipe
    messages.send(left, message)
    assert messages.receive(right) == message


def test_an_unmeasured_cpu_share_travels_as_null_and_comes_back_nan(pipe):
    left, right = pipe
    messages.send(left, messages.CopyStats(float("nan"), 1.0, 0, {}))
    got = messages.receive(right)
    assert isinstance(got, messages.CopyStats) and got.cpu_percent_avg != got.cpu_percent_avg


def test_timings_travel_as_binary_frames(pipe):
    left, right = pipe
    ends = [np.arange(5, dtype=np.int64), np.arange(3, dtype=np.int64) + 100]
    lats = [np.full(5, 7, np.int64), np.full(3, 9, np.int64)]
    messages.send(left, messages.Timings(ends, lats))
    got = messages.receive(right)
    assert isinstance(got, messages.Timings)
    assert [a.tolist() for a in got.end_ns] == [a.tolist() for a in ends]
    assert [a.tolist() for a in got.latency_ns] == [a.tolist() for a in lats]


@pytest.mark.parametrize("frame", [
    b"not json",
    json.dumps({"protocol": 1, "kind": "ready"}).encode(),  # the version before compile messages
    json.dumps({"protocol": messages.PROTOCOL_VERSION, "kind": "abort"}).encode(),
    json.dumps({"protocol": messages.PROTOCOL_VERSION, "kind": "compiling"}).encode(),
    json.dumps({"protocol": messages.PROTOCOL_VERSION, "kind": "go", "start_ns": 1,
                "end_ns": 2, "extra": 3}).encode(),
    json.dumps({"protocol": messages.PROTOCOL_VERSION, "kind": "result"}).encode(),
    json.dumps([messages.PROTOCOL_VERSION]).encode(),
])
def test_foreign_frames_are_protocol_errors(pipe, frame):
    left, right = pipe
    left.send_bytes(frame)
    with pytest.raises(messages.ProtocolError):
        messages.receive(right)
