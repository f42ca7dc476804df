"""The real `sme watch` and `sme report` against the moto server: a deployed experiment's front door
(API Gateway by ApiName, the Lambda proxy by FunctionName) is sampled with the endpoint, in the same
GetMetricData call, and the report draws every layer of the latency on one axis and prices the run from
the instance types the watch recorded. The test itself puts the metric data, as CloudWatch would."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta, timezone
from html import unescape

from tests.conftest import ACCOUNT

ROLE = f"arn:aws:iam::{ACCOUNT}:role/SageMakerRole"
IMAGE = "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-xgboost:1.7-1"


def make_endpoint(boto, name="churn", instance_type="ml.c5.xlarge"):
    """An InService endpoint with one variant, made directly (quicker than a deploy)."""
    sm = boto("sagemaker")
    sm.create_model(ModelName=f"{name}-model", ExecutionRoleArn=ROLE,
                    PrimaryContainer={"Image": IMAGE, "ModelDataUrl": "s3://b/model.tar.gz"})
    sm.create_endpoint_config(EndpointConfigName=f"{name}-config-1", ProductionVariants=[
        {"VariantName": "AllTraffic", "ModelName": f"{name}-model", "InstanceType": instance_type,
         "InitialInstanceCount": 2}])
    sm.create_endpoint(EndpointName=name, EndpointConfigName=f"{name}-config-1")


def record_front_door(aws_env, name="churn"):
    """The deploy state sme writes for an experiment with a `gateway:` section (the URL is what matters)."""
    from pathlib import Path

    state = {"version": 1, "experiment": name, "region": "us-east-1", "resources": [], "endpoint_configs": [],
             "secrets": {}, "outputs": {"gateway_url": f"https://abc123.execute-api.us-east-1.amazonaws.com/prod/"
                                                       f"{name}"}}
    path = Path(aws_env["SME_STATE_DIR"]) / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(state))


def put(boto, namespace, dimensions, metric, values, unit):
    when = datetime.now(timezone.utc) - timedelta(seconds=5)  # CloudWatch publishes a little late
    boto("cloudwatch").put_metric_data(Namespace=namespace, MetricData=[
        {"MetricName": metric, "Value": v, "Unit": unit, "Timestamp": when,
         "Dimensions": [{"Name": k, "Value": val} for k, val in dimensions]} for v in values])


def put_layers(boto, name="churn"):
    """One request-heavy window, every layer in its own unit: API Gateway and Lambda in ms, SageMaker in µs."""
    api, fn = [("ApiName", f"sme-{name}")], [("FunctionName", f"sme-{name}-proxy")]
    put(boto, "AWS/ApiGateway", api, "Latency", [10.0, 30.0], "Milliseconds")  # Average 20
    put(boto, "AWS/ApiGateway", api, "IntegrationLatency", [8.0, 24.0], "Milliseconds")  # Average 16
    put(boto, "AWS/ApiGateway", api, "Count", [3.0, 4.0], "Count")  # Sum 7
    put(boto, "AWS/ApiGateway", api, "5XXError", [1.0], "Count")
    put(boto, "AWS/ApiGateway", [("ApiName", "sme-someone-else")], "Latency", [999.0], "Milliseconds")
    put(boto, "AWS/Lambda", fn, "Duration", [12.0, 14.0], "Milliseconds")  # Average 13
    put(boto, "AWS/Lambda", fn, "Throttles", [2.0], "Count")
    variant = [("EndpointName", name), ("VariantName", "AllTraffic")]
    put(boto, "AWS/SageMaker", variant, "Invocations", [7.0], "Count")
    put(boto, "AWS/SageMaker", variant, "OverheadLatency", [1500.0], "Microseconds")
    put(boto, "AWS/SageMaker", variant, "ModelLatency", [9000.0], "Microseconds")


def test_watch_samples_the_front_door_in_the_same_call(sme, boto, moto, aws_env):
    make_endpoint(boto)
    record_front_door(aws_env)
    put_layers(boto)
    moto.recorder.calls.clear()
    result = sme("watch", "--name", "churn", "--once", "--json", "--interval", "5m", "--p99")
    assert result.returncode == 0, result.stderr
    [sample] = [json.loads(line) for line in result.stdout.splitlines()]
    door = sample["front_door"]
    assert (door["api_name"], door["function_name"]) == ("sme-churn", "sme-churn-proxy")
    got = door["metrics"]
    assert got["Latency"] == 20.0 and got["IntegrationLatency"] == 16.0, f"another API's data leaked in: {got}"
    assert got["Count"] == 7.0 and got["5XXError"] == 1.0 and got["4XXError"] is None, got
    assert got["Duration"] == 13.0 and got["Throttles"] == 2.0 and got["Errors"] is None, got
    assert 20.0 <= got["Latency:p99"] <= 30.0 and 16.0 <= got["IntegrationLatency:p99"] <= 24.0, got
    assert sample["metrics"]["AllTraffic"]["ModelLatency"] == 9000.0, "SageMaker's series are still per variant"
    assert "front door" not in sample["metrics"]
    assert sample["endpoint_config"] == "churn-config-1"
    assert sample["variants"][0]["instance_type"] == "ml.c5.xlarge", sample["variants"]
    ops = [c.operation for c in moto.recorder.calls]
    assert ops.count("GetMetricData") == 1, f"the front door should ride in the sample's one call: {ops}"


def test_an_endpoint_without_a_front_door_records_none(sme, boto, moto):
    make_endpoint(boto)
    put_layers(boto)  # metrics of an API by that name exist, but sme made no front door for this experiment
    result = sme("watch", "--endpoint", "churn", "--once", "--json", "--interval", "5m")
    assert result.returncode == 0, result.stderr
    [sample] = [json.loads(line) for line in result.stdout.splitlines()]
    assert "front_door" not in sample, sample
    assert sample["metrics"]["AllTraffic"]["Invocations"] == 7.0


def test_the_live_lines_say_units(sme, boto, aws_env):
    make_endpoint(boto)
    record_front_door(aws_env)
    put_layers(boto)
    result = sme("watch", "--name", "churn", "--once", "--interval", "5m")
    assert result.returncode == 0, result.stderr
    assert "watching churn and its front door sme-churn in us-east-1" in result.stderr, result.stderr
    assert "AllTraffic.ModelLatency=9.00 ms" in result.stderr, result.stderr  # 9000 µs as CloudWatch gave it
    assert "AllTraffic.Invocations=7.0 per 5m00s" in result.stderr, result.stderr
    assert "front_door.Latency=20.0 ms" in result.stderr and "front_door.Count=7.0 per 5m00s" in result.stderr


def series_points(html: str, chart: str) -> dict[str, list[tuple[float, float]]]:
    """{series name: points} of one chart of the report, read from the SVG's data attributes."""
    figure = re.search(rf'data-chart="{chart}".*?</figure>', html, re.S)
    assert figure, f"no {chart} chart in the report"
    out = {}
    for name, points in re.findall(r'class="series" data-series="([^"]+)"[^>]*?data-points="([^"]*)"', figure.group(0)):
        out[unescape(name)] = [tuple(map(float, p.split(","))) for p in points.split(";") if p]
    return out


def test_report_draws_every_layer_on_one_axis_and_prices_the_recorded_instance_type(sme, boto, aws_env, tmp_path):
    make_endpoint(boto, instance_type="ml.c5.xlarge")
    record_front_door(aws_env)
    put_layers(boto)
    run = tmp_path / "run"
    watched = sme("watch", "--name", "churn", "--once", "--interval", "5m", "--out", str(run / "watch.jsonl"),
                  "--to-csv", str(tmp_path / "watch.csv"))
    assert watched.returncode == 0, watched.stderr
    header, row = (tmp_path / "watch.csv").read_text().splitlines()
    columns = dict(zip(header.split(","), row.split(",")))
    assert columns["front_door.Latency"] == "20.0" and columns["front_door.Duration"] == "13.0", columns
    done = sme("report", str(run))  # no --instance-type, no --prices: what a user types
    assert done.returncode == 0, done.stderr
    assert "unknown" not in done.stderr, f"the instance type was recorded by the watch: {done.stderr}"
    assert "run cost $" in done.stderr and "ml.c5.xlarge" in done.stderr, done.stderr
    assert "AWS_ENDPOINT_URL is a local AWS" in done.stderr and "has no Pricing API" in done.stderr, done.stderr
    assert "--prices table was given" not in done.stderr
    html = (run / "report.html").read_text()
    lat = series_points(html, "latency")
    ys = {name: pts[0][1] for name, pts in lat.items()}
    assert ys["API Gateway Latency avg"] == 20.0 and ys["IntegrationLatency avg"] == 16.0, ys
    assert ys["Lambda Duration avg"] == 13.0, ys
    assert ys["OverheadLatency avg"] == 1.5 and ys["ModelLatency avg"] == 9.0, f"µs drawn as ms: {ys}"
    assert "Latency by layer" in html
    assert "Averages over the watch: API Gateway 20.00 ms, integration 16.00 ms, Lambda 13.00 ms, " \
           "SageMaker overhead 1.50 ms, model 9.00 ms." in unescape(html)
