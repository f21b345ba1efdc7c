"""A token stream of known timing for benchmarks/generate_study.py: 10 ms to the first token,
then 2 ms a token (sleeps: the service time holds on a loaded machine, as a queue study needs)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any


class SleepyTokens:
    """``model(prompt, n)``: n tokens, the first after 10 ms, each next after 2 ms."""

    def __call__(self, prompt: Any, output_tokens: int) -> Iterator[int]:
        time.sleep(0.010)
        yield 0
        for token in range(1, output_tokens):
            time.sleep(0.002)
            yield token
