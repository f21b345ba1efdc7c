"""Explaining a regression: operator-level and Python-level profiles of a configuration, taken
after its measurement on fresh copies, and the difference between base and head.

The room, by role (the copy's side lives with the rest of the model process, in ``child``:
``child.profile_window`` runs one profile window of the framework's profiler or of Python frames
and answers with a ``profiled`` message; ``child.profile_traces`` turns raw traces into tables):

- ``run``: the parent's side: ``profile(request, wanted)`` profiles a ``benchmark`` request's
  configurations instead of measuring them (copies of head and base on the same core slice,
  windows in ABBA order, traces saved); the plugin's fixture calls it.
- ``summary``: the windows of one side as calls and self time per inference, with their spread.
- ``diff``: what changed between two summaries, ranked, with the lines the failure shows.
- ``explain``: when to profile, the time budget, and the explanation attached to a report.
- ``html``: the side-by-side table and the differential flame graph of the HTML report.
"""
