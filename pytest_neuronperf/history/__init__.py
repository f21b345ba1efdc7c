"""The run history (``--neuronperf-history``): the store, change points, the history gate, the
trend table and page, and importing earlier files (docs/history.md)."""
