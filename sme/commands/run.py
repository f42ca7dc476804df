"""`sme run`: declares options only; the work is in sme.run.orchestrate (imported when run)."""

import click

from sme.commands.options import parse_duration_option


@click.command("run")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Run file: experiment, load, watch interval, events, teardown (see examples/seed/run.yaml).")
@click.option("--out", required=True, type=click.Path(file_okay=False),
              help="Directory for the report, run.json, summary.json, timeseries.csv and watch.jsonl.")
@click.option("--timeout", default="30m", callback=parse_duration_option, show_default=True,
              help="How long a deploy (the first one, or an update event) may wait for InService.")
@click.option("--poll-interval", default="15s", callback=parse_duration_option, show_default=True,
              help="How often the first deploy checks the endpoint while waiting.")
@click.pass_obj
def command(env, config_path, out, timeout, poll_interval):
    """Deploy, watch, load-test with events (updates, scaling, a lost zone), report, tear down.

    Exits 0 when the load's SLO passes, 3 when it fails, 4 when an update failed or was rolled back,
    2 for a bad run file (nothing deployed), 130 when stopped (the report holds what ran).
    """
    from pathlib import Path

    from sme.run.orchestrate import RunOptions, run_experiment

    return run_experiment(RunOptions(Path(config_path), Path(out), timeout, poll_interval), env)
