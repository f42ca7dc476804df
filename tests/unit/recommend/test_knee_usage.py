"""CPU and memory at the knee: only watch samples whose window lies inside the knee step count, and what they
say about the limit is in the user's words."""

from types import SimpleNamespace

from sme.recommend.knee_usage import at_knee, limit
from sme.report.utilisation import between


def sample(start: float, cpu: float | None, mem: float | None) -> dict:
    metrics = {k: v for k, v in (("CPUUtilization", cpu), ("MemoryUtilization", mem)) if v is not None}
    return {"time": start + 1, "window": [start, start + 1], "metrics": {"AllTraffic": metrics}}


def test_only_samples_inside_the_step_count():
    samples = [sample(100, 20, 5), sample(103, 150, 10), sample(104, 170, 12), sample(106, 40, 5)]
    u = between(samples, None, 103, 106)
    assert (u.cpu_pct, u.memory_pct, u.samples) == (160, 11, 2), "the steps before and after are left out"
    assert between(samples, "Other", 103, 106).samples == 0


def test_at_the_knee_cpu_is_also_given_as_the_share_of_the_instances_vcpus():
    step = SimpleNamespace(start_s=3, end_s=6, number=2)
    row = at_knee([sample(103, 170, 12), sample(104, 190, 12)], 100, step, "ml.c5.large")
    assert row["cpu_pct_at_knee"] == 180 and row["cpu_pct_of_instance"] == 90
    assert row["limit"].startswith("the instance: its vCPUs were 90% busy")


def test_the_limit_in_words():
    assert limit(0.3, 20, 4).startswith("the model server, not the instance")
    assert limit(0.3, 95, 4).startswith("the instance's memory")
    assert "no watch sample lies inside step 4" in limit(None, None, 4)
