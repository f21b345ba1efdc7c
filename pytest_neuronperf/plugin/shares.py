"""Each pytest-xdist worker's disjoint share of its host's cores (core shares).

How workers split cores, per host
---------------------------------
Workers may run on several hosts (``--tx ssh=...``), and several ``--tx`` specs may reach one
host. A worker tells hosts apart by what it sees itself (:func:`this_host`: the kernel's boot
id, the CPU model and the CPUs it may use; ``NEURONPERF_HOST_ID`` overrides it), never by the
spec's name. Only workers on one host split that host's cores; a worker alone on its host gets
all of them.

1. At configure time every worker joins a registry in its host's temp dir,
   ``<tmp>/pytest-neuronperf-<testrunuid>/workers/<worker id>`` (written to a temp name, then
   renamed: a reader never sees half a file), holding its host key.
2. At its first benchmark the first worker of a host *seals* that host's partition: the sorted
   ids of the host's registered workers, written once (``<host>.partition``, created with
   ``os.link``, which never replaces: the first sealer wins and every other worker reads it).
   xdist schedules no test before every initial worker has collected, hence configured, so the
   sealed list normally holds the whole host; worker *r* of the *k* listed gets the *r*-th of
   ``min(k, cores)`` equal slices.
3. Every benchmark holds its slice's lock (``<host>-slot<N>.lock``). A worker that is not in
   the sealed list (it joined late, e.g. a restarted worker) takes the slice its number lands
   on and queues on that slice's lock, as do workers when there are more workers than cores.
   Since one host's workers all slice by the same sealed list, two slices are either the same
   (one lock) or disjoint: two workers of one host never measure on the same cores at once,
   however late a worker starts. An uncontended lock costs microseconds. (The lock is per slice
   number, whatever the device: two devices' benchmarks on one slice number take turns.)

The registry is removed when the run ends: each worker removes its entry and the last one out
removes the folder on its host; the controller removes its own host's folder after every worker
is down.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import re
import shutil
import socket
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from pytest_neuronperf import safe_files
from pytest_neuronperf.devices.cpu import usable_cpus
from pytest_neuronperf.gating import machine
from pytest_neuronperf.reports import Report

HOST_ID_ENV = "NEURONPERF_HOST_ID"
"""Overrides the host key: workers with the same value split one set of cores."""
BOOT_ID = Path("/proc/sys/kernel/random/boot_id")
REGISTRY_PREFIX = "pytest-neuronperf-"


@dataclass(frozen=True)
class CoreShare:
    """This process's share of the device: its cores, and a lock when the share is shared."""

    cores: list[int]
    lock_path: Path | None = None

    @contextlib.contextmanager
    def hold(self) -> Iterator[None]:
        """Hold the share exclusively while benchmarking (no-op when not shared)."""
        if self.lock_path is None:
            yield
            return
        # queuing here is the point: no limit, and so no holder note for a waiter's message
        with safe_files.exclusive_lock(self.lock_path, name_holder=False):
            yield


@dataclass(frozen=True)
class Host:
    """Which machine a worker runs on: ``name`` for people, ``key`` to tell hosts apart."""

    name: str
    key: str

    def fields(self, worker: str) -> Report:
        """What a report measured on this host by ``worker`` carries."""
        return {"host": self.name, "host_id": self.key, "worker": worker}


def this_host(boot_id_path: Path = BOOT_ID) -> Host:
    """This process's host: a hash of the kernel boot id (the host name where there is none),
    the machine fingerprint's speed fields and the usable CPUs; ``NEURONPERF_HOST_ID`` wins."""
    name = socket.gethostname()
    override = os.environ.get(HOST_ID_ENV, "").strip()
    if override:
        if not re.fullmatch(r"[A-Za-z0-9._-]{1,64}", override):
            raise pytest.UsageError(
                f"{HOST_ID_ENV}={override!r}: a host id is 1-64 letters, digits, '.', '_' or '-' "
                f"(it names files in the temp dir); set another value or unset it")
        return Host(name, override)
    try:
        boot = boot_id_path.read_text().strip()
    except OSError:
        boot = f"host {name}"
    fp = machine.fingerprint("cpu")
    text = json.dumps([boot, machine.machine_id(fp), usable_cpus()])
    return Host(name, hashlib.sha256(text.encode()).hexdigest()[:12])


def worker_number(worker: str) -> int:
    """``gw3`` -> 3 (xdist's worker ids); another name -> a stable number from its hash."""
    if worker.startswith("gw") and worker[2:].isdigit():
        return int(worker[2:])
    return int(hashlib.sha256(worker.encode()).hexdigest()[:8], 16)


def registry_dir(run_id: str) -> Path:
    """The folder of one xdist run's registry and slice locks in this host's temp dir."""
    return Path(tempfile.gettempdir()) / f"{REGISTRY_PREFIX}{run_id}"


@dataclass(frozen=True)
class HostRegistry:
    """One xdist run's workers on the hosts that see ``directory``, and their sealed slices."""

    directory: Path
    host: Host
    attempts: int = field(default=5, repr=False)

    @property
    def _workers(self) -> Path:
        return self.directory / "workers"

    def join(self, worker: str) -> None:
        """Register ``worker`` as running on this host (atomic: temp name, then rename)."""
        for _ in range(self.attempts):  # the last worker of a previous round may remove the dir
            try:
                self._workers.mkdir(parents=True, exist_ok=True)
                temp = self._workers / f".{worker}.{os.getpid()}.tmp"
                temp.write_text(self.host.key)
                os.replace(temp, self._workers / worker)
                return
            except FileNotFoundError:
                continue
        raise OSError(f"pytest-neuronperf could not register xdist worker {worker} in "
                      f"{self._workers}: is the temp dir ({self.directory.parent}) writable?")

    def leave(self, worker: str) -> None:
        """Unregister ``worker``; the last worker out removes the whole folder."""
        with contextlib.suppress(FileNotFoundError):
            (self._workers / worker).unlink()
        try:
            remaining = [p for p in self._workers.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return
        if not remaining:
            shutil.rmtree(self.directory, ignore_errors=True)

    def registered(self) -> list[str]:
        """Workers registered on this host so far, in worker order."""
        try:
            entries = [p for p in self._workers.iterdir() if not p.name.startswith(".")]
        except FileNotFoundError:
            return []
        mine = []
        for entry in entries:
            with contextlib.suppress(FileNotFoundError):
                if entry.read_text().strip() == self.host.key:
                    mine.append(entry.name)
        return sorted(mine, key=worker_number)

    def partition(self, worker: str) -> list[str]:
        """This host's sealed worker list: sealed now (with ``worker`` in it) if nobody has."""
        seal = self.directory / f"{self.host.key}.partition"
        with contextlib.suppress(FileNotFoundError):
            return list(json.loads(seal.read_text()))
        members = sorted({*self.registered(), worker}, key=worker_number)
        self.directory.mkdir(parents=True, exist_ok=True)
        temp = self.directory / f".{self.host.key}.{worker}.{os.getpid()}.tmp"
        temp.write_text(json.dumps(members))
        try:
            os.link(temp, seal)  # never replaces: the first sealer wins
        except FileExistsError:
            members = list(json.loads(seal.read_text()))
        finally:
            temp.unlink()
        return members

    def slot_lock(self, slot: int) -> Path:
        """The lock every worker of this host holds while benchmarking on slice ``slot``."""
        return self.directory / f"{self.host.key}-slot{slot}.lock"


def host_share(all_cores: list[int], worker: str, registry: HostRegistry) -> CoreShare:
    """``worker``'s slice of its host's cores: the host's sealed workers split them evenly, a
    worker alone on its host gets them all; slices held by two workers are held in turn."""
    members = registry.partition(worker)
    rank = members.index(worker) if worker in members else worker_number(worker)
    slots = max(1, min(len(members), len(all_cores)))
    size = len(all_cores) // slots
    slot = rank % slots
    cores = all_cores[slot * size : (slot + 1) * size]
    return CoreShare(cores, registry.slot_lock(slot))
