"""The twin's usage-plan throttle on an injected clock: the token bucket's arithmetic, by hand, without sleeping.

The plan, key and stage are made with boto3 against moto (as `sme deploy` makes them); the clock is a number
the test moves. API Gateway's bucket holds ``burst`` tokens, refills ``rate`` a second, and a request takes one.
"""

from __future__ import annotations

import boto3
from moto import mock_aws

from sme.local.aws.execute_api import UsagePlans

ACCOUNT = "123456789012"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def plan_with_key(rate: int, burst: int, quota: int | None = None):  # type: ignore[no-untyped-def]
    from moto.apigateway.models import apigateway_backends

    apigw = boto3.client("apigateway", region_name="us-east-1")
    api = apigw.create_rest_api(name="churn")["id"]
    key = apigw.create_api_key(name="k", enabled=True)
    plan = {"name": "p", "apiStages": [{"apiId": api, "stage": "prod"}],
            "throttle": {"rateLimit": rate, "burstLimit": burst}}
    if quota:
        plan["quota"] = {"limit": quota, "period": "DAY"}
    plan_id = apigw.create_usage_plan(**plan)["id"]
    apigw.create_usage_plan_key(usagePlanId=plan_id, keyId=key["id"], keyType="API_KEY")
    return apigateway_backends[ACCOUNT]["us-east-1"], api, key["value"]


def statuses(usage: UsagePlans, backend, api: str, key: str, n: int) -> list[int]:  # type: ignore[no-untyped-def]
    return [(usage.admit(backend, api, "prod", key) or (200, ""))[0] for _ in range(n)]


@mock_aws
def test_a_burst_is_served_then_the_rate_refills_one_token_per_1_over_rate_seconds():
    backend, api, key = plan_with_key(rate=20, burst=40)
    clock = Clock()
    usage = UsagePlans(clock)
    assert statuses(usage, backend, api, key, 70) == [200] * 40 + [429] * 30, "the burst, then nothing"
    clock.now += 0.5  # 20/s x 0.5 s = 10 tokens
    assert statuses(usage, backend, api, key, 12) == [200] * 10 + [429] * 2
    clock.now += 0.049  # 0.98 of a token: not yet one
    assert statuses(usage, backend, api, key, 1) == [429]
    clock.now += 0.002  # 1.02 tokens
    assert statuses(usage, backend, api, key, 2) == [200, 429]
    clock.now += 3600  # a long pause refills to the burst, never beyond
    assert statuses(usage, backend, api, key, 41) == [200] * 40 + [429]


@mock_aws
def test_the_wrong_key_or_a_key_on_no_plan_is_forbidden_and_takes_no_token():
    backend, api, key = plan_with_key(rate=1, burst=1)
    usage = UsagePlans(Clock())
    assert usage.admit(backend, api, "prod", "not-the-key") == (403, "Forbidden")
    assert usage.admit(backend, api, "other-stage", key) == (403, "Forbidden")
    assert usage.admit(backend, api, "prod", None) == (403, "Forbidden")
    assert statuses(usage, backend, api, key, 2) == [200, 429], "the refused calls took no token"


@mock_aws
def test_the_quota_counts_admitted_requests_only():
    backend, api, key = plan_with_key(rate=10, burst=5, quota=7)
    clock = Clock()
    usage = UsagePlans(clock)
    assert statuses(usage, backend, api, key, 6) == [200] * 5 + [429]  # throttled: not charged to the quota
    clock.now += 10
    got = [usage.admit(backend, api, "prod", key) for _ in range(4)]
    assert got == [None, None, (429, "Limit Exceeded"), (429, "Limit Exceeded")], got
