"""Before the first deploy: every candidate's own preflight, and whether ``parallel`` candidates fit at once.

`parallel` candidates run at once, so at the worst moment the `parallel` largest fleets of one instance type
are up together: that many instances must fit in the type's quota (less what the account's other endpoints
use), and that many addresses in the base experiment's subnets (one per instance). Serverless candidates
count against the account's serverless quotas instead: the `parallel` largest MaxConcurrency values together
within the total concurrency quota, and that many serverless endpoints within the endpoint quota (less what
the account's other serverless endpoints hold). When they do not fit, the error names ``parallel``, says which
limit, and how many candidates would fit at once (exit 2, nothing deployed). Each candidate's own checks (role, artifact, image, its own quota) are `sme preflight`'s, for the
plan its deploy would carry out (exit 6 on a fail, nothing deployed).
"""

from __future__ import annotations

from typing import Any, Callable

from sme.errors import ConfigError
from sme.core.preflight_facts import quota_named


def most_at_once(counts: list[int], parallel: int) -> int:
    return sum(sorted(counts, reverse=True)[:parallel])


def fitting(counts: list[int], free: int) -> int:
    """How many candidates can run at once within ``free`` (taking the largest fleets, the worst case)."""
    n, used = 0, 0
    for count in sorted(counts, reverse=True):
        if used + count > free:
            break
        n, used = n + 1, used + count
    return n


def parallel_problems(by_type: dict[str, list[int]], free_by_type: dict[str, int | None], free_ips: int | None,
                      parallel: int) -> list[tuple[str, int]]:
    """(what does not fit, how many candidates would) for each limit ``parallel`` breaks; pure."""
    problems = []
    for itype, counts in sorted(by_type.items()):
        free = free_by_type.get(itype)
        need = most_at_once(counts, parallel)
        if free is not None and need > free:
            fits = fitting(counts, free)
            problems.append((f"{min(parallel, len(counts))} {itype} candidate(s) at once need {need} instance(s), "
                             f"but the quota '{itype} for endpoint usage' leaves {free} free", fits))
    every = [c for counts in by_type.values() for c in counts]
    need = most_at_once(every, parallel)
    if free_ips is not None and need > free_ips:
        problems.append((f"{min(parallel, len(every))} candidate(s) at once need {need} address(es) in the "
                         f"subnets, which have {free_ips} free", fitting(every, free_ips)))
    return problems


def serverless_problems(concurrencies: list[int], quotas: dict[str, float], used: tuple[int, int],
                        parallel: int) -> list[tuple[str, int]]:
    """(what does not fit, how many candidates would) for the serverless quotas ``parallel`` breaks; pure.
    ``used``: (serverless endpoints, their total MaxConcurrency) the account already has."""
    if not concurrencies:
        return []
    problems = []
    at_once = min(parallel, len(concurrencies))
    name = quota_named(quotas, "serverless", "concurrency")
    if name is not None:
        free, need = int(quotas[name]) - used[1], most_at_once(concurrencies, parallel)
        if need > free:
            problems.append((f"{at_once} serverless candidate(s) at once need a total concurrency of {need}, but "
                             f"the quota '{name}' leaves {free} free", fitting(concurrencies, free)))
    name = quota_named(quotas, "serverless", "number of")
    if name is not None:
        free = int(quotas[name]) - used[0]
        if at_once > free:
            problems.append((f"{at_once} serverless candidate(s) at once need {at_once} serverless endpoint(s), but "
                             f"the quota '{name}' leaves {free} free", max(0, free)))
    return problems


def check_parallel(rec: Any, aws: Any, say: Callable[[str], None]) -> None:
    from sme.core.preflight_facts import instances_elsewhere, read_quotas, read_subnets, serverless_elsewhere

    by_type: dict[str, list[int]] = {}
    for c in rec.candidates:
        if c.instance_type:
            by_type.setdefault(c.instance_type, []).append(c.count)
    quotas, quota_error = read_quotas(aws)
    if quota_error:
        say(f"note: quotas unreadable ({quota_error}): `parallel` is checked against free addresses only")
    used = instances_elsewhere(aws, "")
    free_by_type = {t: int(quotas[f"{t} for endpoint usage"]) - used.get(t, 0) for t in by_type
                    if f"{t} for endpoint usage" in quotas}
    subnets = tuple((rec.base.get("network") or {}).get("subnets") or ())
    facts, subnet_error = read_subnets(aws, subnets)
    free_ips = sum(s.free for s in facts) if subnets and not subnet_error else None
    problems = parallel_problems(by_type, free_by_type, free_ips, rec.parallel)
    concurrencies = [int(c.serverless["max_concurrency"]) for c in rec.candidates if c.serverless is not None]
    if concurrencies and quotas:
        problems += serverless_problems(concurrencies, quotas, serverless_elsewhere(aws, ""), rec.parallel)
    if problems:
        what, fits = problems[0]
        fix = f"set parallel: {fits}" if fits else "no candidate fits even alone: raise the quota or free addresses"
        raise ConfigError(rec.source, "parallel", f"{rec.parallel} at once do not fit: {what}; {fits} would fit",
                          hint=fix)


def preflight_each(experiments: list[Any], aws: Any, say: Callable[[str], None]) -> None:
    """Each candidate's `sme preflight`, before any of them is deployed; raise on the first that fails."""
    from sme.core.preflight import PreflightFailed, failed, run
    from sme.deploy import deploy_planner
    from sme.state import load_state

    for label, exp in experiments:
        desired, plan = deploy_planner(exp)(aws, load_state(exp.name))
        bad = failed(run(aws, desired, plan))
        if bad:
            raise PreflightFailed(f"preflight failed for candidate {label}: {bad[0].name}: {bad[0].numbers}; "
                                  "nothing was deployed", hint=bad[0].fix or f"run `sme preflight -c` on its sme.yaml")
        say(f"preflight passed: {label}")
