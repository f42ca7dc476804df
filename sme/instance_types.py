"""SageMaker instance types sme knows: vCPUs and memory, from a dated table (``sme/data/instance_types.json``).

Used to refuse an instance type that does not exist before anything is deployed (``sme recommend``), and by
the twin to give a local instance the CPU of its type (``local_share``), so that a local sweep ranks
instance types the way AWS would, on this machine's scale.

How a type maps onto this machine: a vCPU of these families is one hyperthread, so a type has
``ceil(vcpus / 2)`` physical cores; a local instance is pinned to that many of this machine's cores (at most
all of them) and runs one model-server worker per vCPU, as SageMaker's containers do by default. On a
2-core laptop an ``ml.c5.large`` gets 1 core and 2 workers, an ``ml.m5.xlarge`` 2 cores and 4 workers.
Memory is listed but not enforced locally (a limit would kill a model that AWS would merely page).
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from functools import lru_cache
from importlib import resources
from typing import Any

VCPUS_PER_CORE = 2


@dataclass(frozen=True)
class InstanceType:
    name: str
    vcpus: int
    memory_gib: float


@dataclass(frozen=True)
class LocalShare:
    """What one local instance of a type gets on this machine."""

    instance_type: str
    workers: int
    cores: tuple[int, ...]  # the CPUs its processes may run on
    capped: bool  # the type has more cores than this machine: it got all of them

    def describe(self) -> str:
        more = " (capped: this machine has no more)" if self.capped else ""
        return f"{self.instance_type}: {len(self.cores)} core(s){more}, {self.workers} worker(s)"


@lru_cache(maxsize=1)
def table() -> dict[str, Any]:
    return json.loads(resources.files("sme.data").joinpath("instance_types.json").read_text())


def known(name: str) -> InstanceType | None:
    row = table()["types"].get(name)
    return None if row is None else InstanceType(name, int(row["vcpus"]), float(row["memory_gib"]))


def names() -> list[str]:
    return sorted(table()["types"])


def source() -> str:
    t = table()
    return f"{t['source']}, {t['date']}"


def local_share(name: str, machine_cores: list[int] | None = None, first: int = 0) -> LocalShare | None:
    """The cores and workers of one local instance of ``name`` (None: a type sme does not know). ``first``
    rotates the cores handed out, so that instances of different endpoints do not all pile onto core 0."""
    itype = known(name)
    if itype is None:
        return None
    cores = sorted(machine_cores if machine_cores is not None else os.sched_getaffinity(0))
    wanted = max(1, math.ceil(itype.vcpus / VCPUS_PER_CORE))
    count = min(wanted, len(cores))
    chosen = tuple(sorted(cores[(first + i) % len(cores)] for i in range(count)))
    return LocalShare(name, itype.vcpus, chosen, capped=wanted > len(cores))
