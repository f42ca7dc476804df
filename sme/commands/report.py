"""`sme report`: declares options only; the work is in sme.report.build (imported when run)."""

import click


@click.command("report")
@click.argument("directory", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--out", type=click.Path(dir_okay=False), help="Where to write the page.  [default: DIR/report.html]")
@click.option("--watch", "watch_file", type=click.Path(dir_okay=False),
              help="The `sme watch --out` file, if it is not in DIR (default: DIR/watch.jsonl or any watch *.jsonl).")
@click.option("--instance-type", "instance_types", multiple=True, metavar="[VARIANT=]TYPE",
              help="Instance type for the cost (repeat VARIANT=TYPE per variant; plain TYPE for all).")
@click.option("--region", help="Region for prices (default: from the watched subnets, then AWS_REGION).")
@click.option("--prices", type=click.Choice(["auto", "table"]), default="auto", show_default=True,
              help="auto: the AWS Pricing API, falling back to sme's price table; table: the table only.")
@click.pass_obj
def command(env, directory, out, watch_file, instance_types, region, prices):
    """Write one self-contained HTML report of a load test and/or watch run in DIR.

    Charts share one time axis with the load stages shaded: client req/s and errors, client vs CloudWatch
    latency, instances and scaling, CPU/memory, free IPs per subnet; a summary with SLO verdicts,
    peak req/s, p99, errors, instance-minutes, cost and the lowest free-IP headroom.
    """
    from pathlib import Path

    from sme.report.build import ReportOptions, run_report

    opts = ReportOptions(Path(directory), Path(out) if out else None, Path(watch_file) if watch_file else None,
                         tuple(instance_types), region, prices == "auto")
    return run_report(opts, env)
