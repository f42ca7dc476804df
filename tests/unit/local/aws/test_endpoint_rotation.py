"""Which instance the twin's InvokeEndpoint picks (sme.local.aws.endpoints.LocalEndpoints.pick)."""

from __future__ import annotations

import pytest

from sme.local.aws.endpoints import Fleet, LocalEndpoint, LocalEndpoints

KEY = ("123456789012", "us-east-1", "e")


def endpoints_with(**variants) -> tuple[LocalEndpoints, LocalEndpoint]:
    eps = LocalEndpoints.__new__(LocalEndpoints)  # no launcher: nothing here starts a process
    eps.endpoints, eps.observers = {}, []
    ep = LocalEndpoint("e", KEY[0], KEY[1], live=Fleet("c", {v: list(group) for v, group in variants.items()}))
    eps.endpoints[KEY] = ep
    return eps, ep


def test_requests_go_round_robin_across_the_instances():
    eps, _ = endpoints_with(AllTraffic=["i1", "i2", "i3"])
    picked = [eps.pick(*KEY)[2] for _ in range(9)]
    assert picked == ["i1", "i2", "i3"] * 3


def test_an_instance_still_warming_up_gets_no_traffic_until_promoted():
    eps, ep = endpoints_with(AllTraffic=["i1"])
    ep.warming.append("i2")
    assert {eps.pick(*KEY)[2] for _ in range(6)} == {"i1"}
    ep.live.instances["AllTraffic"].append(ep.warming.pop())
    assert {eps.pick(*KEY)[2] for _ in range(6)} == {"i1", "i2"}


def test_a_target_variant_is_honoured_and_an_unknown_endpoint_is_a_lookup_error():
    eps, _ = endpoints_with(A=["a1"], B=["b1"])
    assert {eps.pick(*KEY, "B")[1:] for _ in range(4)} == {("B", "b1")}
    with pytest.raises(LookupError):
        eps.pick(KEY[0], KEY[1], "missing")
    with pytest.raises(LookupError):
        eps.pick(*KEY, "C")
