"""A served model (``Endpoint``): nothing to load in the copy, which is an HTTP client; the
generate scenario's ``child.endpoint_client`` makes the requests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from pytest_neuronperf.devices.base import Placement
from pytest_neuronperf.protocol.specs import ModelSource


class EndpointAdapter:
    """The ``endpoint`` framework: a copy whose model lives in another process."""

    name = "endpoint"

    def set_threads(self, threads: int) -> None:
        """No framework pool: the copy's threads wait on sockets."""

    def load(self, source: ModelSource, placement: Placement) -> Any:
        """The endpoint's URL (the copy's token stream connects to it)."""
        if source.kind != "endpoint":
            raise ValueError(f"the endpoint framework measures served models (Endpoint(url)), "
                             f"not {source.filename}")
        return source.path

    def prepare_inputs(self, example: Any, batch_size: int, placement: Placement
                       ) -> tuple[Any, ...]:
        return (example,)

    def thread_setup(self) -> None:
        pass

    def synchronizer(self, placement: Placement) -> Callable[[], None] | None:
        return None
