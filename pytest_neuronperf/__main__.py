"""``python -m pytest_neuronperf``: the ``pytest-neuronperf`` command line (see ``cli``)."""

from pytest_neuronperf.cli import main

raise SystemExit(main())
