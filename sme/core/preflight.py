"""Preflight: will this deploy fit? A table of pass / warn / fail, with the numbers behind each.

    quota     "<instance type> for endpoint usage" >= the most instances this deploy can run (autoscaling
              max, or the count; doubled while a blue/green update runs both fleets), minus what the
              account's other endpoints already use
    subnet    free IP addresses in each subnet and AZ >= its share of those instances, with headroom after
    HA        subnets in two or more AZs, two or more instances (warnings: it works, but one AZ can take
              the endpoint down)
    role      exists and trusts sagemaker.amazonaws.com;  artifact exists;  image resolves

``evaluate`` is pure (Facts in, checks out); ``gate`` reads the facts, shows the checks and raises
``PreflightFailed`` (exit 6) on any fail, before the deploy makes a single mutating call.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Callable

from sme.core.models import Desired
from sme.core.preflight_facts import Facts
from sme.core.steps import Plan, UpdateEndpoint
from sme.errors import ExitStatus, SmeError

class PreflightFailed(SmeError):
    status = ExitStatus.PREFLIGHT_FAILED


@dataclass(frozen=True)
class Check:
    name: str
    outcome: str  # pass | warn | fail
    numbers: str
    fix: str = ""


@dataclass(frozen=True)
class Peak:
    """The most instances of one type this deploy can run at once, and why."""

    instance_type: str
    instances: int
    why: str


def peaks(desired: Desired, plan: Plan) -> list[Peak]:
    updating = any(isinstance(s, UpdateEndpoint) for s in plan.steps)
    limits = {s.variant: s.max for s in desired.scaling}
    per_type: dict[str, list[str]] = {}
    totals: dict[str, int] = {}
    for v in desired.config.variants:
        if v.instance_type is None:  # serverless: no instances (its concurrency quota is not read yet)
            continue
        most = limits.get(v.name, v.count)
        totals[v.instance_type] = totals.get(v.instance_type, 0) + most
        per_type.setdefault(v.instance_type, []).append(
            f"{v.name} {'max' if v.name in limits else 'count'} {most}")
    out = []
    for itype, total in totals.items():
        why = ", ".join(per_type[itype])
        if updating:
            why += "; x2 while a blue/green update runs both fleets"
            total *= 2
        out.append(Peak(itype, total, why))
    return out


def evaluate(desired: Desired, plan: Plan, facts: Facts) -> list[Check]:
    found = peaks(desired, plan)
    checks = [quota_check(p, facts) for p in found] + serverless_checks(desired, facts)
    need = sum(p.instances for p in found)
    checks += network_checks(desired, facts, need)
    checks += ha_checks(desired, facts)
    checks += [role_check(desired, facts.role), artifact_check(desired, facts.artifact),
               image_check(desired, facts.image)]
    return checks


def quota_check(peak: Peak, facts: Facts) -> Check:
    name = f"quota: {peak.instance_type} for endpoint usage"
    if facts.quota_error:
        return Check(name, "warn", f"need {peak.instances} ({peak.why}); quota unreadable: {facts.quota_error}",
                     "allow servicequotas:ListServiceQuotas, or check the quota in the Service Quotas console")
    quota = facts.quotas.get(f"{peak.instance_type} for endpoint usage")
    if quota is None:
        return Check(name, "warn", f"need {peak.instances} ({peak.why}); no such quota listed",
                     "check that the instance type is offered for endpoints in this region")
    used = facts.used_elsewhere.get(peak.instance_type, 0)
    left = int(quota) - used
    numbers = f"need {peak.instances} ({peak.why}); quota {quota:g}, {used} used by other endpoints, {left} free"
    if peak.instances > left:
        return Check(name, "fail", numbers,
                     f"request an increase of '{peak.instance_type} for endpoint usage' to at least "
                     f"{peak.instances + used} in Service Quotas, lower the count/max, or pick another instance type")
    return Check(name, "pass", numbers + f", {left - peak.instances} to spare")


def serverless_checks(desired: Desired, facts: Facts) -> list[Check]:
    """The account's serverless quotas: the MaxConcurrency of all its serverless endpoints together, and how
    many there are (AWS documents 200 and 50 by default; some accounts have had 10 and 5)."""
    asked = [v.serverless.max_concurrency for v in desired.config.variants if v.serverless is not None]
    if not asked:
        return []
    endpoints, held = facts.serverless_elsewhere
    return [_serverless_quota(facts, "total concurrency", ("serverless", "concurrency"), sum(asked), held,
                              f"MaxConcurrency {' + '.join(map(str, asked))}", "lower max_concurrency to {free}"),
            _serverless_quota(facts, "endpoints", ("serverless", "number of"), 1, endpoints, "this endpoint",
                              "delete a serverless endpoint you no longer use")]


def _serverless_quota(facts: Facts, what: str, words: tuple[str, ...], need: int, held: int, why: str,
                      lower: str) -> Check:
    from sme.core.preflight_facts import quota_named

    name = f"quota: serverless {what}"
    if facts.quota_error:
        return Check(name, "warn", f"need {need} ({why}); quota unreadable: {facts.quota_error}",
                     "allow servicequotas:ListServiceQuotas, or check the quota in the Service Quotas console")
    quota = quota_named(facts.quotas, *words)
    if quota is None:
        return Check(name, "warn", f"need {need} ({why}); no serverless {what} quota listed",
                     "check the serverless quotas in the Service Quotas console")
    free = int(facts.quotas[quota]) - held
    numbers = f"need {need} ({why}); quota '{quota}' {facts.quotas[quota]:g}, {held} held by other serverless " \
              f"endpoints, {free} free"
    if need > free:
        return Check(name, "fail", numbers, f"{lower.format(free=max(0, free))}, or request an increase of "
                                            f"'{quota}' to at least {need + held} in Service Quotas")
    return Check(name, "pass", numbers + f", {free - need} to spare")


def network_checks(desired: Desired, facts: Facts, need: int) -> list[Check]:
    if not desired.model.subnets:
        return [Check("subnets", "pass", "no VPC: the endpoint runs in SageMaker's own network")]
    if facts.subnet_error:
        return [Check("subnets", "fail", facts.subnet_error, "use subnet ids that exist in this region and account")]
    checks = []
    share = math.ceil(need / len(facts.subnets)) if facts.subnets else need
    for s in facts.subnets:
        after = s.free - share
        numbers = f"{s.free} free IPs in {s.az}; needs {share} (one per instance, {need} spread over " \
                  f"{len(facts.subnets)} subnets); {after} after"
        fix = f"free addresses in {s.id} (delete unused network interfaces), or use a larger subnet"
        checks.append(Check(f"subnet {s.id}", "fail" if after < 0 else "pass", numbers, fix if after < 0 else ""))
    by_az: dict[str, list[Any]] = {}
    for s in facts.subnets:
        by_az.setdefault(s.az, []).append(s)
    for az, subnets in sorted(by_az.items()):
        free, az_need = sum(s.free for s in subnets), share * len(subnets)
        outcome = "fail" if free < az_need else "pass"
        checks.append(Check(f"AZ {az}", outcome, f"{free} free IPs in {len(subnets)} subnet(s); needs {az_need}; "
                            f"{free - az_need} after", "add a subnet in this AZ or free addresses" if outcome == "fail"
                            else ""))
    return checks


def ha_checks(desired: Desired, facts: Facts) -> list[Check]:
    checks = []
    if desired.model.subnets:
        azs = sorted({s.az for s in facts.subnets})
        ok = len(azs) >= 2
        checks.append(Check("HA: availability zones", "pass" if ok else "warn",
                            f"subnets in {len(azs)} AZ{'s' if len(azs) != 1 else ''} ({', '.join(azs) or 'none'})",
                            "" if ok else "add a subnet in a second AZ so one AZ's outage can't take the endpoint down"))
    lows = {s.variant: s.min for s in desired.scaling}
    instances = [lows.get(v.name, v.count) for v in desired.config.variants if v.instance_type is not None]
    if not instances:
        return checks  # serverless: SageMaker spreads it over AZs itself
    fewest = min(instances)
    ok = fewest >= 2
    checks.append(Check("HA: instances", "pass" if ok else "warn", f"at least {fewest} instance{'s' if fewest != 1 else ''}"
                        " per variant", "" if ok else "run 2 or more instances (count, or autoscaling min) so "
                        "SageMaker can spread them over AZs"))
    return checks


def role_check(desired: Desired, fact: str) -> Check:
    arn = desired.role.arn if desired.role else desired.model.role_arn
    outcomes = {
        "ok": ("pass", f"{arn} exists and trusts sagemaker.amazonaws.com", ""),
        "create": ("pass", f"{arn} will be created with a least-privilege policy", ""),
        "missing": ("fail", f"{arn} does not exist", "create the role, fix model.role, or use `role: create`"),
        "untrusted": ("fail", f"{arn} does not trust sagemaker.amazonaws.com",
                      "add sagemaker.amazonaws.com to the role's trust policy (sts:AssumeRole)"),
        "other-account": ("warn", f"{arn} is in another account; not checked", ""),
    }
    outcome, numbers, fix = outcomes.get(fact, ("warn", f"{arn}: could not check ({fact[6:]})", ""))
    return Check("execution role", outcome, numbers, fix)


def artifact_check(desired: Desired, fact: str) -> Check:
    url = desired.model.model_data_url
    if fact == "upload" and desired.artifact:
        mb = desired.artifact.size / 1e6
        return Check("model artifact", "pass", f"{desired.artifact.local_path} ({mb:.1f} MB) is uploaded at deploy")
    if fact == "ok":
        return Check("model artifact", "pass", f"{url} exists")
    if fact == "missing":
        return Check("model artifact", "fail", f"{url} does not exist", "upload it or fix model.model_data")
    return Check("model artifact", "warn", f"{url}: could not check ({fact[6:]})")


def image_check(desired: Desired, fact: str) -> Check:
    image = desired.model.image
    outcomes = {
        "ok": ("pass", f"{image} is in ECR", ""),
        "sagemaker": ("pass", f"{image} (published by SageMaker)", ""),
        "missing": ("fail", f"{image} is not in ECR", "push the image, or fix model.image's repository and tag"),
        "other-account": ("warn", f"{image} is in another account; not checked", ""),
    }
    outcome, numbers, fix = outcomes.get(fact, ("warn", f"{image}: could not check ({fact[6:]})", ""))
    return Check("image", outcome, numbers, fix)


def failed(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.outcome == "fail"]


def run(aws: Any, desired: Desired, plan: Plan) -> list[Check]:
    from sme.core.preflight_facts import gather

    return evaluate(desired, plan, gather(aws, desired))


def gate(aws: Any, desired: Desired, plan: Plan, show: Callable[[list[Check]], None]) -> list[Check]:
    """Run the checks, show them; raise on any fail."""
    checks = run(aws, desired, plan)
    show(checks)
    raise_on_fail(checks)
    return checks


def raise_on_fail(checks: list[Check]) -> None:
    bad = failed(checks)
    if bad:
        first = bad[0]
        more = f" (and {len(bad) - 1} more failed check{'s' if len(bad) > 2 else ''})" if len(bad) > 1 else ""
        raise PreflightFailed(f"preflight failed: {first.name}: {first.numbers}{more}; nothing was changed",
                              hint=first.fix or "see the preflight table", status=ExitStatus.PREFLIGHT_FAILED)
