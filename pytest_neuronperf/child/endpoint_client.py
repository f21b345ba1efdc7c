"""Inside a model copy: requests to a served OpenAI-compatible endpoint, timed chunk by chunk.

Each request is one streaming completion (``POST {url}/completions`` with ``"stream": true``):
the server answers with server-sent events, one ``data: {json}`` line per chunk and
``data: [DONE]`` at the end. The time of a chunk is taken when its line arrives, before the JSON
is parsed; a chunk whose first choice carries text is a token arrival (vLLM sends one per token
by default). The token count is the server's own (``usage.completion_tokens``, asked for with
``stream_options.include_usage``) when it reports one, else the number of such chunks.

Asked for exactly ``output_tokens``: ``max_tokens`` plus vLLM's ``min_tokens`` and
``ignore_eos`` (other servers ignore fields they do not know). httpx (one pooled client per
copy, shared by its driver threads) does the HTTP.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from typing import Any

from pytest_neuronperf.protocol.messages import Refusal
from pytest_neuronperf.protocol.specs import Endpoint

CONNECT_TIMEOUT_S = 10.0
Add = Callable[[int], None]
"""Where each chunk's arrival time goes (the driver thread's ``array.append``)."""


class EndpointStream:
    """Streaming completions from ``endpoint``, one request per call of :meth:`run`."""

    def __init__(self, endpoint: Endpoint, ignore_eos: bool) -> None:
        import httpx

        self.httpx = httpx
        self.endpoint = endpoint
        self.url = endpoint.url.rstrip("/")
        self.source = f"the server at {self.url}"
        """How error messages name what produced the tokens."""
        self.ignore_eos = ignore_eos
        headers = {"Authorization": f"Bearer {endpoint.api_key}"} if endpoint.api_key else {}
        self.client = httpx.Client(
            base_url=self.url, headers=headers,
            timeout=httpx.Timeout(endpoint.timeout, connect=min(CONNECT_TIMEOUT_S,
                                                                endpoint.timeout)),
            limits=httpx.Limits(max_connections=None, max_keepalive_connections=None))
        self.model = endpoint.model or self.served_model()

    def served_model(self) -> str:
        """The server's model when none was named: the first of ``GET {url}/models``."""
        response = self.call("GET", "/models")
        try:
            return str(response.json()["data"][0]["id"])
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise Refusal(f"{self.url}/models lists no model ({response.text[:120]!r}): name "
                          f"the served model with Endpoint(url, model=...)") from exc

    def call(self, method: str, path: str) -> Any:
        """A plain request, with the transport's faults said in a sentence."""
        try:
            response = self.client.request(method, path)
        except self.httpx.HTTPError as exc:
            raise Refusal(self.transport_fault(exc, 0, 0)) from exc
        if response.status_code != 200:
            raise Refusal(f"{self.url}{path} answered HTTP {response.status_code}: "
                          f"{response.text[:200]!r}")
        return response

    def prepare(self, prompts: list[Any], output_tokens: int) -> Any:
        if len(prompts) != 1:
            raise Refusal("an endpoint batches requests itself: use batch_sizes=1 and "
                          "workers_per_model (concurrent requests per copy) or target_qps")
        prompt = prompts[0]
        body: dict[str, Any] = {"model": self.model,
                                "prompt": prompt if isinstance(prompt, str) else list(prompt),
                                "max_tokens": output_tokens, "temperature": 0.0, "stream": True,
                                "stream_options": {"include_usage": True}}
        if self.ignore_eos:
            body.update(min_tokens=output_tokens, ignore_eos=True)
        body.update(dict(self.endpoint.extra_body))
        return body

    def run(self, payload: Any, output_tokens: int, add: Add) -> tuple[int, int]:
        clock = time.perf_counter_ns
        chunks = 0
        usage: dict[str, Any] = {}
        finished = False
        try:
            with self.client.stream("POST", "/completions", json=payload) as response:
                if response.status_code != 200:
                    response.read()
                    raise Refusal(f"{self.url}/completions answered HTTP "
                                  f"{response.status_code}: {response.text[:200]!r}")
                for line in response.iter_lines():
                    now = clock()
                    if not line.startswith("data:"):
                        continue  # blank separators, comments, event names
                    data = line[5:].strip()
                    if data == "[DONE]":
                        finished = True
                        break
                    chunk = json.loads(data)
                    choices = chunk.get("choices") or []
                    if choices and choices[0].get("text"):
                        add(now)
                        chunks += 1
                    if isinstance(chunk.get("usage"), dict):
                        usage = chunk["usage"]
        except self.httpx.HTTPError as exc:
            raise Refusal(self.transport_fault(exc, chunks, output_tokens)) from exc
        except json.JSONDecodeError as exc:
            raise Refusal(f"{self.url}/completions sent a chunk that is not JSON ({exc}): is "
                          f"it an OpenAI-compatible server?") from exc
        if not finished:
            raise Refusal(f"{self.url}/completions closed the stream after {chunks} of "
                          f"{output_tokens} tokens without its end (data: [DONE]): the server "
                          f"dropped the request")
        tokens = usage.get("completion_tokens")
        prompt = usage.get("prompt_tokens")
        return (int(tokens) if isinstance(tokens, int) and chunks else chunks,
                int(prompt) if isinstance(prompt, int) else -1)

    def transport_fault(self, exc: Exception, chunks: int, output_tokens: int) -> str:
        """What an httpx error means for the user, in one sentence."""
        httpx = self.httpx
        where = f"{self.url}"
        if isinstance(exc, httpx.ConnectError):
            return f"cannot connect to {where} ({exc}): is the server running and listening?"
        if isinstance(exc, httpx.TimeoutException):
            return (f"{where} did not answer within {self.endpoint.timeout:g} s "
                    f"({type(exc).__name__}, after {chunks} tokens): the server hangs or is "
                    f"far slower than expected (Endpoint(timeout=...) waits longer)")
        return (f"{where} broke the stream after {chunks} of {output_tokens} tokens "
                f"({type(exc).__name__}: {exc}): the server dropped the request")
