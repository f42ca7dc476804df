"""The twin's zone failure: the zone's instances die and free their addresses; replacements go elsewhere."""

from __future__ import annotations

import subprocess

import boto3
import pytest
from moto import mock_aws

from sme.local.aws import zones
from sme.local.aws.endpoints import Fleet, LocalEndpoint, LocalEndpoints
from sme.local.aws.fleet import Instance, Launcher

ACCOUNT = "123456789012"


class SleepLauncher(Launcher):
    """Instances that are plain processes: the placement and the deaths are what is tested, not the model."""

    def start(self, variant, artifact, environment, image="", region="us-east-1", instance_type=None):  # type: ignore[override]
        return Instance(variant, 0, subprocess.Popen(["sleep", "60"]), self.workdir / "s", self.workdir / "l")


@pytest.fixture
def endpoint(tmp_path):
    with mock_aws():
        ec2 = boto3.client("ec2", region_name="us-east-1")
        vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
        subnets = [ec2.create_subnet(VpcId=vpc, CidrBlock=f"10.9.{i}.0/28", AvailabilityZone=f"us-east-1{az}")
                   ["Subnet"]["SubnetId"] for i, az in enumerate("abc")]
        endpoints = LocalEndpoints(SleepLauncher(tmp_path))
        ep = LocalEndpoint("e", ACCOUNT, "us-east-1", subnets=subnets, artifacts={"AllTraffic": None})
        endpoints.endpoints[(ACCOUNT, "us-east-1", "e")] = ep
        ep.live = Fleet("c1", {"AllTraffic": [endpoints._launch(ep, "AllTraffic") for _ in range(3)]})
        yield endpoints, ep, subnets, ec2
        endpoints.stop_all()
        zones.forget_failures()


def free(ec2, subnets):
    found = {s["SubnetId"]: s["AvailableIpAddressCount"] for s in ec2.describe_subnets(SubnetIds=subnets)["Subnets"]}
    return [found[s] for s in subnets]


def test_the_zones_instances_die_and_their_replacements_start_in_the_other_zones(endpoint):
    endpoints, ep, subnets, ec2 = endpoint
    assert free(ec2, subnets) == [10, 10, 10], "one instance per zone to begin with"
    [doomed] = [i for i in ep.live.all() if i.subnet_id == subnets[0]]
    answer = zones.fail(endpoints, "us-east-1a")
    assert [x["subnet"] for x in answer["lost"]] == [subnets[0]] and answer["replacing"] == 1
    assert doomed.proc.wait(5) is not None, "the instance in the failed zone was killed"
    assert doomed not in ep.live.all() and len(ep.live.all()) == 2
    [replacement] = ep.warming
    assert replacement.subnet_id in subnets[1:], "placed only in a zone still working"
    assert free(ec2, subnets)[0] == 11, "the failed zone's address is released"
    assert sum(free(ec2, subnets)[1:]) == 19, "the replacement holds a third address in the surviving subnets"
    assert not zones.usable("us-east-1a") and zones.usable("us-east-1b")


def test_new_instances_avoid_a_failed_zone_until_it_is_restored(endpoint):
    endpoints, ep, subnets, ec2 = endpoint
    zones.fail(endpoints, "us-east-1b")
    placed = [endpoints._launch(ep, "AllTraffic") for _ in range(4)]
    assert subnets[1] not in {i.subnet_id for i in placed}
    zones.restore("us-east-1b")
    assert zones.usable("us-east-1b")
    endpoints.stop_instances(ep, placed)


def test_when_every_zone_has_failed_the_answer_says_why_nothing_was_replaced(endpoint):
    endpoints, ep, subnets, ec2 = endpoint
    zones.fail(endpoints, "us-east-1a")
    zones.fail(endpoints, "us-east-1b")
    answer = zones.fail(endpoints, "us-east-1c")
    assert answer["replacing"] == 0 and "every zone of the subnets" in answer["errors"][0]
    assert ep.live.all() == [] and ep.warming == [] and free(ec2, subnets) == [11, 11, 11]


def test_an_instance_still_stopping_when_its_zone_fails_dies_at_once_and_frees_its_address(endpoint):
    """An update's old fleet (or a scale-in) is out of every fleet but still stopping, holding its address,
    when the zone fails: AWS's lost zone takes it too. Here its stop ignores SIGTERM (the twin would wait
    10 s before killing it): the failure kills it and releases its address at once, without a replacement."""
    import threading
    import time

    from sme.local.aws.fleet import Addresses

    endpoints, ep, subnets, ec2 = endpoint
    slow = Instance("AllTraffic", 0, subprocess.Popen(["sh", "-c", "trap '' TERM; sleep 60"]),
                    endpoints.launcher.workdir / "s", endpoints.launcher.workdir / "l")
    Addresses(ACCOUNT, "us-east-1").attach(slow, "e", [subnets[0]], [])
    assert free(ec2, subnets) == [9, 10, 10], "the leaving instance holds a second address in zone a"
    stopping = threading.Thread(target=endpoints.stop_instances, args=(ep, [slow]))
    stopping.start()
    deadline = time.monotonic() + 5
    while slow not in ep.retiring and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)
    assert slow.proc.poll() is None and free(ec2, subnets)[0] == 9, "SIGTERM ignored: still up, still holding it"
    answer = zones.fail(endpoints, "us-east-1a")
    assert slow.proc.wait(2) is not None, "killed with the zone, not 10 s later"
    assert free(ec2, subnets)[0] == 11, "both of zone a's addresses released at once"
    assert answer["replacing"] == 1 and len(answer["lost"]) == 1, "only the serving instance is replaced"
    stopping.join(5)
    assert not stopping.is_alive() and ep.retiring == []
