"""Explaining a regression: operator-level and Python-level profiles of a configuration, taken
after its measurement on fresh copies, and the difference between base and head.

The room, by role:

- ``window``: runs inside a model copy; one profile window of the framework's profiler
  (``operators``) or of Python frames (``python``), answered with a ``profiled`` message.
- ``traces``: turns raw traces (torch's Chrome trace, TensorFlow's XSpace, cProfile's stats)
  into tables of self time and calls per key, and TensorFlow's XSpace into a Chrome trace.
- ``run``: the parent's side of one profile run (copies of head and base on the same core
  slice, windows in ABBA order, traces saved), called by ``engine.benchmark``.
- ``summary``: the windows of one side as calls and self time per inference, with their spread.
- ``diff``: what changed between two summaries, ranked, with the lines the failure shows.
- ``explain``: when to profile, the time budget, and the explanation attached to a report.
- ``html``: the side-by-side table and the differential flame graph of the HTML report.
"""
