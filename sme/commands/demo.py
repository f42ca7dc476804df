import click


@click.command("demo")
@click.option("--out", default="sme-demo", show_default=True, type=click.Path(file_okay=False),
              help="Where the results go.")
@click.option("--minutes", default=3.0, show_default=True, type=click.FloatRange(1, 60),
              help="About how long the demo runs.")
@click.pass_obj
def command(env, out, minutes):
    """Deploy, load-test, watch and report a real model on a local AWS: no AWS account needed."""
    from pathlib import Path

    from sme.local.demo import DemoOptions, run_demo

    return run_demo(DemoOptions(out=Path(out), minutes=minutes), env)
