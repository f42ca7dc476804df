"""`sme plan-capacity`: declares options only; the work is in sme.capacity (imported when run)."""

import click


@click.command("plan-capacity")
@click.argument("directory", type=click.Path(file_okay=True, dir_okay=True))
@click.option("--peak-rps", type=click.FloatRange(min=0, min_open=True), required=True,
              help="The peak request rate to plan for (req/s).")
@click.option("--p99-ms", type=click.FloatRange(min=0, min_open=True), required=True,
              help="The latency SLO: p99 in milliseconds a step must stay within.")
@click.option("--safety", type=click.FloatRange(min=0, max=1, min_open=True), default=0.5, show_default=True,
              help="Fraction of the sustainable rate the autoscaling target aims at.")
@click.option("--instances", type=click.IntRange(min=1),
              help="Instances that served the step run (default: from the watch file, else 1).")
@click.option("--min-instances", type=click.IntRange(min=1), default=1, show_default=True,
              help="The scaling policy's minimum capacity (for the cost at minimum).")
@click.option("--max-error-rate", type=click.FloatRange(min=0, max=1),
              help="Error share a step may have and still hold (default: the run's error_rate SLO, else 0.01).")
@click.option("--instance-type", help="Instance type to price, e.g. ml.m5.large (default: from the watch file).")
@click.option("--region", help="Region for prices (default: from the watched subnets, then AWS_REGION).")
@click.option("--prices", type=click.Choice(["auto", "table"]), default="auto", show_default=True,
              help="auto: the AWS Pricing API, falling back to sme's price table; table: the table only.")
@click.option("--watch", "watch_file", type=click.Path(dir_okay=False),
              help="The `sme watch --out` file, if it is not in DIR.")
@click.option("--ttft-p99-ms", type=click.FloatRange(min=0, min_open=True),
              help="Streaming: the time-to-first-token p99 a step must stay within (default: the run's SLO).")
@click.option("--itl-p99-ms", type=click.FloatRange(min=0, min_open=True),
              help="Streaming: the inter-token latency p99 a step must stay within (default: the run's SLO).")
@click.option("--json", "as_json", is_flag=True, help="Print the plan as JSON.")
@click.pass_obj
def command(env, directory, peak_rps, p99_ms, safety, instances, min_instances, max_error_rate, instance_type, region,
            prices, watch_file, ttft_p99_ms, itl_p99_ms, as_json):
    """Plan instances, the autoscaling target and cost from a step run in DIR.

    Finds the highest step that held the SLO, divides by the instances that served it, and derives the
    target-tracking value (InvocationsPerInstance = req/s per instance x safety x 60). A streaming ladder is
    judged on TTFT/ITL too and reports tokens/s per step and the cost per million output tokens at the knee;
    a serverless endpoint is costed per inference. Exits 3 when no step held the SLO.
    """
    from sme.capacity import CapacityOptions, run_plan_capacity

    opts = CapacityOptions(directory, peak_rps, p99_ms, safety, instances, min_instances, max_error_rate,
                           instance_type, region, prices == "auto", watch_file, as_json, ttft_p99_ms, itl_p99_ms)
    return run_plan_capacity(opts, env)
