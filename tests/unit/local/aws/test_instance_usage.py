"""The twin's CPUUtilization and MemoryUtilization are what the instance's processes used, in SageMaker's terms:
CPU summed over the type's vCPUs, memory over the type's memory."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from types import SimpleNamespace

import psutil
import pytest

from sme.instance_types import LocalShare
from sme.local.aws.metrics import MetricsPublisher, usage

GIB = 2 ** 30


def test_a_busy_core_reads_as_the_types_vcpus_and_memory_as_its_memory():
    c5 = LocalShare("ml.c5.large", 2, (0,), False)  # 2 vCPUs, 4 GiB, one core here
    assert usage(100.0, GIB, c5) == (200.0, 25.0)
    m5 = LocalShare("ml.m5.xlarge", 4, (0, 1), False)  # 4 vCPUs, 16 GiB, two cores here
    assert usage(100.0, 4 * GIB, m5) == (200.0, 25.0), "one of its two cores busy: half of its 4 vCPUs"


def test_an_unknown_type_is_measured_against_this_machine():
    cpu, mem = usage(50.0, GIB, None)
    assert cpu == 50.0 and mem == pytest.approx(100.0 * GIB / psutil.virtual_memory().total)


def test_the_published_cpu_is_the_instance_processes_own_cpu_time():
    core = sorted(os.sched_getaffinity(0))[0]
    spin = subprocess.Popen([sys.executable, "-c", f"import os; os.sched_setaffinity(0, {{{core}}})\nwhile True: pass"])
    try:
        instance = SimpleNamespace(proc=spin, share=LocalShare("ml.c5.large", 2, (core,), False))
        publisher = MetricsPublisher(SimpleNamespace(observers=[]))
        publisher._usage([instance])  # starts the measurement
        before, t0 = psutil.Process(spin.pid).cpu_times(), time.monotonic()
        deadline = time.monotonic() + 1.0
        while time.monotonic() < deadline:  # a busy machine may give the spinner less than a core: measured
            time.sleep(0.05)
        [(cpu, mem)] = publisher._usage([instance])
        after, t1 = psutil.Process(spin.pid).cpu_times(), time.monotonic()
    finally:
        spin.kill()
        spin.wait()
    used = (after.user + after.system - before.user - before.system) / (t1 - t0)  # cores' worth
    assert cpu == pytest.approx(used * 200.0, rel=0.15, abs=10.0), f"published {cpu:.0f}%, the process used {used:.2f} core"
    assert 0 < mem < 5.0, f"a bare interpreter's share of an ml.c5.large's 4 GiB: {mem:.2f}%"
