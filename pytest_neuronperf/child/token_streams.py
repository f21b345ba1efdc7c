"""Inside a model copy: how one request's tokens are produced and timestamped, per model form.

Three forms (:func:`stream_for`):

- a transformers causal LM (anything with transformers' ``GenerationMixin``): ``generate`` with
  a streamer, greedy, exactly the asked number of new tokens (``min_new_tokens`` too, unless
  ``ignore_eos=False``);
- any other callable: ``model(prompt, output_tokens)`` returns an iterator whose first item is
  the first token (a batch: ``model(prompts, output_tokens)``, one item per step);
- an OpenAI-compatible endpoint (``child.endpoint_client``).

A stream calls ``add(perf_counter_ns())`` as each token (each step of a batch, each chunk of an
endpoint) arrives, into an ``array`` the driver thread owns: nothing else happens per token.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any, Protocol

from pytest_neuronperf.child.endpoint_client import EndpointStream
from pytest_neuronperf.protocol.messages import Refusal
from pytest_neuronperf.protocol.specs import GenerateSpec

Add = Callable[[int], None]
"""Where a stream puts each token's timestamp (``array.append``)."""


@dataclass(frozen=True)
class Batch:
    """One request as the stream will run it: its prepared prompts and what it asks for."""

    payload: Any
    output_tokens: int
    prompt_tokens: int
    """Prompt tokens of every sequence together (-1: unknown, e.g. text for an endpoint)."""
    sequences: int
    first_prompt: int
    """Position of its first prompt in the user's prompts (for error messages)."""


class TokenStream(Protocol):
    """One model form's way to run a request; shared by the copy's driver threads."""

    def prepare(self, prompts: list[Any], output_tokens: int) -> Any:
        """The payload of a request of these prompts (done once, before anything is timed)."""
        ...

    def run(self, payload: Any, output_tokens: int, add: Add) -> tuple[int, int]:
        """Run one request; ``add`` each token's time as it arrives. Returns (output tokens per
        sequence, prompt tokens as the model reported them or -1)."""
        ...


def stream_for(model: Any, spec: GenerateSpec) -> TokenStream:
    """The stream for what the copy loaded: an endpoint, a transformers LM, or an iterator."""
    if spec.endpoint is not None:
        return EndpointStream(spec.endpoint, spec.ignore_eos)
    if is_causal_lm(model):
        return CausalLMStream(model, spec.ignore_eos)
    if callable(model):
        return IteratorStream(model)
    raise Refusal(f"the model is a {type(model).__name__}, which neither generates (a "
                  f"transformers model) nor can be called to return an iterator of tokens")


def plan_batches(stream: TokenStream, spec: GenerateSpec, batch_size: int) -> list[Batch]:
    """The requests a copy deals round-robin: each prompt in turn, ``batch_size`` at a time
    (wrapping around), asking for the most tokens any of its prompts asks for."""
    count = len(spec.prompts)
    batches = []
    for request in range(-(-count // batch_size)):  # every prompt at least once
        positions = [(request * batch_size + i) % count for i in range(batch_size)]
        prompts = [spec.prompts[p] for p in positions]
        wanted = max(spec.output_tokens[p] for p in positions)
        known = not any(isinstance(p, str) for p in prompts)
        batches.append(Batch(stream.prepare(prompts, wanted), wanted,
                             sum(len(p) for p in prompts) if known else -1, batch_size,
                             positions[0]))
    return batches


def is_causal_lm(model: Any) -> bool:
    """A transformers model that generates (without importing transformers if nothing did)."""
    generation = sys.modules.get("transformers")
    return generation is not None and isinstance(model, generation.GenerationMixin)


class IteratorStream:
    """``model(prompt, output_tokens)`` returns an iterator; its items are the tokens."""

    def __init__(self, model: Callable[..., Any]) -> None:
        self.model = model

    def prepare(self, prompts: list[Any], output_tokens: int) -> Any:
        return prompts[0] if len(prompts) == 1 else prompts

    def run(self, payload: Any, output_tokens: int, add: Add) -> tuple[int, int]:
        clock = time.perf_counter_ns
        tokens = self.model(payload, output_tokens)
        iterator = checked_iterator(tokens)
        count = 0
        try:
            for _ in iterator:
                add(clock())
                count += 1
                if count >= output_tokens:
                    break
        finally:
            close = getattr(iterator, "close", None)
            if close is not None:  # a generator asked for no more: let it clean up
                close()
        return count, -1


def checked_iterator(tokens: Any) -> Iterator[Any]:
    """``tokens`` if it is an iterator, else a refusal: a list (or a tensor) was made whole
    before its first token could be seen, so every token would look produced at once."""
    if isinstance(tokens, Iterator):
        return tokens
    what = type(tokens).__name__
    raise Refusal(
        f"the model returned a {what}, not an iterator: its tokens were all produced before the "
        f"first one could be timed. Return them as they are made (a generator: yield each "
        f"token), or pass a transformers model, which is run with a streamer")


class CausalLMStream:
    """A transformers causal LM run by ``generate`` with a streamer: greedy, exactly the asked
    tokens (``min_new_tokens`` too, unless ``ignore_eos`` is off), left-padded batches."""

    def __init__(self, model: Any, ignore_eos: bool) -> None:
        import torch

        self.torch = torch
        self.model = model.eval() if hasattr(model, "eval") else model
        self.ignore_eos = ignore_eos
        self.pad = pad_token(model)
        self.device = getattr(model, "device", None) or "cpu"

    def prepare(self, prompts: list[Any], output_tokens: int) -> Any:
        torch = self.torch
        if any(isinstance(p, str) for p in prompts):
            raise Refusal("a transformers model takes prompts as token ids (a list of ints, or "
                          "a tensor): tokenize the text first (strings are for endpoints)")
        longest = max(len(p) for p in prompts)
        ids = torch.full((len(prompts), longest), self.pad, dtype=torch.long)
        mask = torch.zeros((len(prompts), longest), dtype=torch.long)
        for row, prompt in enumerate(prompts):  # left padding: every sequence ends together
            ids[row, longest - len(prompt):] = torch.tensor(prompt, dtype=torch.long)
            mask[row, longest - len(prompt):] = 1
        return {"input_ids": ids.to(self.device), "attention_mask": mask.to(self.device)}

    def run(self, payload: Any, output_tokens: int, add: Add) -> tuple[int, int]:
        streamer = StampStreamer(add, payload["input_ids"].shape[-1])
        options: dict[str, Any] = {"max_new_tokens": output_tokens, "do_sample": False,
                                   "pad_token_id": self.pad, "streamer": streamer}
        if self.ignore_eos:
            options["min_new_tokens"] = output_tokens
        with self.torch.inference_mode():
            self.model.generate(**payload, **options)
        return streamer.tokens, -1


def pad_token(model: Any) -> int:
    """The id a batch is padded with: the model's pad token, else its end-of-sequence, else 0."""
    config = getattr(model, "generation_config", None)
    for name in ("pad_token_id", "eos_token_id"):
        value = getattr(config, name, None)
        if isinstance(value, list | tuple):
            value = value[0] if value else None
        if isinstance(value, int):
            return value
    return 0


class StampStreamer:
    """A transformers streamer that only timestamps: ``generate`` puts the prompt first (left
    out), then each step's new tokens (shape ``(batch,)``, or ``(batch, k)`` for several)."""

    def __init__(self, add: Add, prompt_length: int) -> None:
        self._add = add
        self._clock = time.perf_counter_ns
        self._prompt_length = prompt_length
        self._first = True
        self.tokens = 0

    def put(self, value: Any) -> None:
        """One step's new tokens (or, first, the prompt)."""
        now = self._clock()
        several = value.dim() == 2
        if self._first:
            self._first = False
            if several and value.shape[-1] == self._prompt_length:
                return
        self._add(now)
        self.tokens += value.shape[-1] if several else 1

    def end(self) -> None:
        """Generation is over (nothing to do: the driver timed the call)."""
