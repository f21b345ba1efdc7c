"""Top-level generative models for the generate scenario's tests: token iterators that sleep a
fixed time per token (their timings are known) and ones that misbehave. No framework: a test
process that imports them stays light (the transformers models are in ``llm_models``)."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from typing import Any

TOKEN_S = 0.002
FIRST_TOKEN_S = 0.006


class Sleeper:
    """``FIRST_TOKEN_S`` before the first token, ``TOKEN_S`` before each next one."""

    token_s = TOKEN_S

    def __call__(self, prompt: Any, output_tokens: int) -> Iterator[int]:
        time.sleep(FIRST_TOKEN_S)
        yield 0
        for token in range(1, output_tokens):
            time.sleep(self.token_s)
            yield token


class SlowerSleeper(Sleeper):
    """Twice the time per output token."""

    token_s = 2 * TOKEN_S


class YieldsNothing:
    """Its stream ends before a first token."""

    def __call__(self, prompt: Any, output_tokens: int) -> Iterator[int]:
        return iter(())


class StopsEarly:
    """Half the tokens asked for, then stops (as a model at its end-of-sequence token)."""

    def __call__(self, prompt: Any, output_tokens: int) -> Iterator[int]:
        for token in range(max(1, output_tokens // 2)):
            time.sleep(TOKEN_S)
            yield token


class ReturnsAList:
    """Every token at once: nothing to time token by token."""

    def __call__(self, prompt: Any, output_tokens: int) -> list[int]:
        time.sleep(TOKEN_S * output_tokens)
        return list(range(output_tokens))


class TimesPrompt:
    """Records the prompts it got (``$PROMPT_LOG``), one token per step of its batch."""

    def __call__(self, prompt: Any, output_tokens: int) -> Iterator[int]:
        path = os.environ.get("PROMPT_LOG")
        if path:
            with open(path, "a") as log:
                log.write(repr(prompt) + "\n")
        for token in range(output_tokens):
            time.sleep(TOKEN_S / 4)
            yield token
