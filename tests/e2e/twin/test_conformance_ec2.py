"""EC2 on the twin: the network interfaces of an endpoint in a VPC, as the AWS CLI sees them."""

from __future__ import annotations

import json

from tests.e2e.twin.conftest import IMAGE


def test_an_endpoint_in_a_vpc_holds_requester_managed_interfaces_in_use(twin):
    ec2, sm = twin.client("ec2"), twin.client("sagemaker")
    vpc = ec2.create_vpc(CidrBlock="10.9.0.0/16")["Vpc"]["VpcId"]
    subnet = ec2.create_subnet(VpcId=vpc, CidrBlock="10.9.0.0/24", AvailabilityZone="us-east-1a")["Subnet"]["SubnetId"]
    group = ec2.create_security_group(GroupName="vpc-endpoint", Description="conformance", VpcId=vpc)["GroupId"]
    sm.create_model(ModelName="in-vpc", ExecutionRoleArn="arn:aws:iam::123456789012:role/SageMakerRole",
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://conformance-models/model.tar.gz"},
                    VpcConfig={"Subnets": [subnet], "SecurityGroupIds": [group]})
    sm.create_endpoint_config(EndpointConfigName="in-vpc", ProductionVariants=[{
        "VariantName": "AllTraffic", "ModelName": "in-vpc", "InitialInstanceCount": 1, "InstanceType": "ml.m5.large"}])
    sm.create_endpoint(EndpointName="in-vpc", EndpointConfigName="in-vpc")
    try:
        sm.get_waiter("endpoint_in_service").wait(EndpointName="in-vpc", WaiterConfig={"Delay": 0.2, "MaxAttempts": 300})
        result = twin.aws("ec2", "describe-network-interfaces", "--filters", f"Name=subnet-id,Values={subnet}")
        assert result.returncode == 0, result.stderr
        (eni,) = json.loads(result.stdout)["NetworkInterfaces"]
        assert eni["RequesterManaged"] is True and eni["Status"] == "in-use", eni
        assert "SageMaker endpoint in-vpc" in eni["Description"]
    finally:
        sm.delete_endpoint(EndpointName="in-vpc")
    assert ec2.describe_network_interfaces(Filters=[{"Name": "subnet-id", "Values": [subnet]}])["NetworkInterfaces"] == []
