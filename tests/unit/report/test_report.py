"""`sme report` without a browser: bad input, the summary numbers, prices, ticks."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.runs import T0, churn_run, write_loadtest, write_watch  # noqa: E402

from sme.report import svg  # noqa: E402
from sme.report.build import ReportOptions, parse_instance_types, price_variants  # noqa: E402
from sme.report.pricing import API, Pricer, hosting_price  # noqa: E402
from sme.report.rundir import load_run  # noqa: E402
from sme.report.summary import headline, instance_minutes  # noqa: E402

pytestmark = pytest.mark.timeout(60)


def sme_report(directory: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x", AWS_ENDPOINT_URL="http://127.0.0.1:9")
    return subprocess.run([sys.executable, "-m", "sme", "report", str(directory), *args], capture_output=True,
                          text=True, timeout=60, env=env)


# -- bad input -------------------------------------------------------------------------------------------
def test_empty_directory_is_a_usage_error_that_says_so(tmp_path: Path) -> None:
    done = sme_report(tmp_path)
    assert done.returncode == 2
    assert "holds no load-test results and no watch samples" in done.stderr and "it has: nothing" in done.stderr
    assert "Traceback" not in done.stderr


def test_foreign_directory_lists_what_it_holds(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "events.jsonl").write_text('{"user": 1}\n')
    (tmp_path / "summary.json").write_text('{"name": "not ours"}')
    done = sme_report(tmp_path)
    assert done.returncode == 2, done.stderr
    assert "events.jsonl, notes.txt, summary.json" in done.stderr
    assert "summary.json is not a summary `sme loadtest` wrote" in done.stderr


@pytest.mark.parametrize("make, message", [
    (lambda p: p / "nope", "no such directory"),
    (lambda p: (p / "f.json").write_text("{}") and p / "f.json", "is a file, not a run directory"),
])
def test_missing_or_file_argument(tmp_path: Path, make, message: str) -> None:
    done = sme_report(make(tmp_path))
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_truncated_and_garbled_watch_lines_are_skipped_and_named(tmp_path: Path) -> None:
    run = churn_run(tmp_path / "run")
    lines = (run / "watch.jsonl").read_text().splitlines(keepends=True)
    lines[5] = "{not json\n"
    lines[-1] = lines[-1][: len(lines[-1]) // 2]  # the watcher was killed mid-write
    (run / "watch.jsonl").write_text("".join(lines))
    done = sme_report(run, "--prices", "table")
    assert done.returncode == 0, done.stderr
    assert "line(s) 6 are not watch samples: skipped" in done.stderr
    assert "the last line is cut off" in done.stderr
    html = (run / "report.html").read_text()
    assert "line(s) 6 are not watch samples" in html and 'data-chart="instances"' in html


def test_truncated_summary_keeps_the_per_second_rows(tmp_path: Path) -> None:
    run = churn_run(tmp_path / "run", watch=False)
    text = (run / "summary.json").read_text()
    (run / "summary.json").write_text(text[: len(text) // 2])
    done = sme_report(run)
    assert done.returncode == 0, done.stderr
    assert "summary.json is not valid JSON (truncated?)" in done.stderr
    html = (run / "report.html").read_text()
    assert 'data-chart="throughput"' in html
    card = html[html.index('data-card="p99 latency"'):].split("</div></div>")[0]
    assert '<div class="v ">-</div>' in card and "is missing or unreadable" in card, card
    assert "request-weighted" not in html, "no p99 is made up from per-second p99s"


def test_a_run_with_no_successful_request_is_reported_as_such(tmp_path: Path) -> None:
    run = tmp_path / "dead"
    write_loadtest(run, [(30.0, 20.0)], fail_every=1)
    done = sme_report(run)
    assert done.returncode == 0, done.stderr
    html = (run / "report.html").read_text()
    assert "No request succeeded" in html
    assert 'data-card="Errors"' in html and "100.00% of 600 requests" in html


def test_watch_file_elsewhere_is_read_with_the_watch_option(tmp_path: Path) -> None:
    run = churn_run(tmp_path / "run", watch=False)
    write_watch(tmp_path / "w" / "samples.jsonl", 240)
    done = sme_report(run, "--watch", str(tmp_path / "w" / "samples.jsonl"), "--prices", "table")
    assert done.returncode == 0, done.stderr
    assert 'data-chart="subnets"' in (run / "report.html").read_text()


def test_report_is_self_contained(tmp_path: Path) -> None:
    run = churn_run(tmp_path / "run")
    assert sme_report(run, "--prices", "table").returncode == 0
    html = (run / "report.html").read_text()
    assert "<script" not in html and "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "<link" not in html and "@import" not in html


# -- the numbers ---------------------------------------------------------------------------------------
def test_instance_minutes_count_a_scale_out_from_the_sample_that_saw_it() -> None:
    samples = [{"time": T0 + t, "interval": 10, "variants": [{"name": "A", "current_instances": n}]}
               for t, n in ((0, 1), (10, 1), (20, 2), (30, 2))]
    minutes, covered = instance_minutes(samples)
    assert minutes == {"A": pytest.approx((10 + 10 + 20 + 20) / 60)}  # the last sample holds one interval
    assert covered == 40


def test_cost_of_a_run_is_instance_minutes_times_the_hourly_price(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_watch(run / "watch.jsonl", 100, interval=10, start_offset=0, scale_out_at=50, instances=2)
    loaded = load_run(run)
    prices = price_variants(loaded, ReportOptions(run, instance_types=("ml.c5.xlarge",), use_pricing_api=False),
                            Pricer(use_api=False), [])
    h = headline(loaded, prices)
    # samples at 0..120 s every 10 s: 2 instances before 50 s, 3 from 50 s; the last sample holds 10 s
    expected_minutes = (5 * 2 * 10 + 8 * 3 * 10) / 60
    assert h.instance_minutes == pytest.approx(expected_minutes)
    assert h.cost_usd == pytest.approx(expected_minutes / 60 * 0.204)
    assert h.lowest_headroom == 17  # (14 - 3) + 6 free addresses once 3 instances run
    assert h.lowest_az == ("us-east-1b", 6)


def test_peak_is_the_best_sustained_window_of_successful_requests(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_loadtest(run, [(60.0, 50.0), (40.0, 150.0), (60.0, 50.0)], fail_every=10)
    h = headline(load_run(run), {})
    assert h.peak_rps == pytest.approx(150 - 15)
    assert "best 30 s window" in h.peak_rps_basis


def test_instance_type_flags() -> None:
    assert parse_instance_types(["ml.m5.large", "Blue=ml.c5.xlarge"]) == ("ml.m5.large", {"Blue": "ml.c5.xlarge"})
    from sme.errors import UserError

    with pytest.raises(UserError, match="not a SageMaker instance type"):
        parse_instance_types(["m5.large"])


# -- prices --------------------------------------------------------------------------------------------
def product(usage: str, usd: str) -> str:
    return json.dumps({"product": {"attributes": {"usagetype": usage, "instanceName": "ml.m5.large"}},
                       "terms": {"OnDemand": {"X.Y": {"priceDimensions": {"X.Y.Z": {"unit": "Hrs",
                                                                                  "pricePerUnit": {"USD": usd}}}}}}})


def stubbed_pricing(replies: list[dict]):  # type: ignore[no-untyped-def]
    import botocore.session
    from botocore.stub import Stubber

    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    for reply in replies:
        stub.add_response("get_products", reply)
    stub.activate()
    return client


def test_pricing_api_answer_is_used_and_named() -> None:
    client = stubbed_pricing([{"PriceList": [product("USE1-AsyncInf:ml.m5.large", "0.2"),
                                             product("USE1-Host:ml.m5.large", "0.1150000000")]}])
    price = Pricer(client_factory=lambda: client).price("ml.m5.large", "us-east-1")
    assert price.usd_per_hour == pytest.approx(0.115) and price.source == API


def test_pricing_api_failure_falls_back_to_the_table_and_says_why() -> None:
    import botocore.session
    from botocore.stub import Stubber

    client = botocore.session.get_session().create_client(
        "pricing", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x")
    stub = Stubber(client)
    stub.add_client_error("get_products", "AccessDeniedException", "not allowed")
    stub.activate()
    pricer = Pricer(client_factory=lambda: client)
    price = pricer.price("ml.m5.large", "eu-west-1")
    assert price.usd_per_hour == pytest.approx(0.115)
    assert "price table" in price.source and "AccessDeniedException" in price.note
    assert "us-east-1 rate" in price.note  # the table has no eu-west-1 column
    assert pricer.price("ml.c5.large", "us-east-1").note.startswith("the AWS Pricing API did not answer")


def test_hosting_price_reads_only_real_time_hosting() -> None:
    assert hosting_price(json.loads(product("USW2-Host:ml.m5.large", "0.115")), "ml.m5.large") == 0.115
    assert hosting_price(json.loads(product("USW2-Host:ml.m5.large", "0.115")), "ml.m5.xlarge") is None
    assert hosting_price(json.loads(product("USE1-Train:ml.m5.large", "0.115")), "ml.m5.large") is None


def test_price_table_names_its_source_and_date() -> None:
    from sme.report.pricing import load_table

    table = load_table()
    assert "pricing" in table["source"] and table["date"] and table["approximate"] is True
    assert table["regions"]["us-east-1"]["ml.m5.large"] > 0


# -- ticks -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("lo, hi, most", [(0, 1, 5), (0, 237, 6), (-20, 262, 11), (0, 0.004, 5), (0, 3, 4),
                                          (0, 1e6, 7)])
def test_ticks_cover_the_range_within_the_count(lo: float, hi: float, most: int) -> None:
    ticks = svg.nice_ticks(lo, hi, most)
    assert 2 <= len(ticks) <= most and ticks[0] <= lo and ticks[-1] >= hi


def test_integer_axes_have_whole_ticks() -> None:
    assert svg.nice_ticks(0, 3, 8, integer=True) == [0, 1, 2, 3]


def test_time_axis_switches_units_with_the_span() -> None:
    assert svg.time_unit(240)[0] == "s" and svg.time_unit(1800)[0] == "min" and svg.time_unit(86400)[0] == "h"


def test_report_help_lists_the_options() -> None:
    done = subprocess.run([sys.executable, "-m", "sme", "report", "--help"], capture_output=True, text=True)
    assert done.returncode == 0 and "--instance-type" in done.stdout and "--prices" in done.stdout


def test_a_stage_the_load_generator_limited_is_named_in_the_report_and_on_stderr(tmp_path: Path) -> None:
    run = tmp_path / "run"
    write_loadtest(run, [(30.0, 10.0), (300.0, 10.0)])
    summary = json.loads((run / "summary.json").read_text())
    busy = {"process": "local:4242@laptop", "mean": 0.97, "peak": 1.0, "saturated_share": 0.8}
    summary["stages"][0]["limited_by"] = {"load_generator": False, "machine": False}
    summary["stages"][1]["limited_by"] = {"load_generator": True, "machine": False, "busiest_process": busy}
    (run / "summary.json").write_text(json.dumps(summary))
    done = sme_report(run, "--prices", "table")
    assert done.returncode == 0, done.stderr
    expected = "stage 2: the load generator was the limit: load process local:4242@laptop used 97% of a core"
    assert expected in done.stderr and "stage 1:" not in done.stderr
    assert expected in (run / "report.html").read_text()


def test_an_asynchronous_endpoint_is_priced_at_the_asyncinf_usage_type() -> None:
    """The Price List prices an asynchronous endpoint's instances as ``<REGION>-AsyncInf:<type>``."""
    client = stubbed_pricing([{"PriceList": [product("USE1-Host:ml.m5.large", "0.115"),
                                             product("USE1-AsyncInf:ml.m5.large", "0.2")]}])
    price = Pricer(client_factory=lambda: client).price("ml.m5.large", "us-east-1", "AsyncInf")
    assert price.usd_per_hour == pytest.approx(0.2) and price.source == API
    assert hosting_price(json.loads(product("USE1-AsyncInf:ml.m5.large", "0.2")), "ml.m5.large") is None
    table = Pricer(use_api=False).price("ml.m5.large", "us-east-1", "AsyncInf")
    assert table.usd_per_hour == pytest.approx(0.115) and "Host rate" in table.note, table.note
