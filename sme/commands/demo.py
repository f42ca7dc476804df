import click

KINDS = ("realtime", "serverless", "async", "llm")


@click.command("demo")
@click.option("--out", default="sme-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the results go.")
@click.option("--minutes", default=3.0, show_default=True, type=click.FloatRange(1, 60),
              help="About how long the demo runs.")
@click.option("--kind", default="realtime", show_default=True, type=click.Choice(KINDS),
              help="The endpoint to demonstrate: realtime (instances, autoscaling, subnets), serverless "
                   "(cold starts, throttles), async (a queue, results in S3) or llm (streamed tokens).")
@click.pass_obj
def command(env, out, minutes, kind):
    """Deploy, load-test, watch and report a real model on a local AWS: no AWS account needed."""
    from pathlib import Path

    from sme.local.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(out=Path(out), minutes=minutes, kind=kind), env)
