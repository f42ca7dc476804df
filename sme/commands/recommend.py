"""`sme recommend`: declares options only; the work is in sme.recommend.run (imported when run)."""

import click


@click.command("recommend")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False),
              help="The recommend file (experiment, candidates, load, slo, peak_rps, parallel).")
@click.option("--out", type=click.Path(file_okay=False), help="Folder for sweep.json, each candidate's run, "
              "recommendation.json and report.html.")
@click.option("--resume", type=click.Path(file_okay=False), metavar="DIR",
              help="Continue the sweep in DIR: tear down what it left, redo only unfinished candidates.")
@click.option("--poll-interval", "poll", default="5s", show_default=True, help="How often deploys poll.")
@click.option("--prices", type=click.Choice(["auto", "table"]), default="auto", show_default=True,
              help="auto: the AWS Pricing API, falling back to sme's price table; table: the table only.")
@click.pass_obj
def command(env, config_path, out, resume, poll, prices):
    """Which instance type or serverless size meets the SLO at the lowest cost.

    Deploys each candidate as its own endpoint, runs the load ladder against it, finds its knee, tears it
    down, and writes recommendation.json and report.html. Exits 3 when no candidate met the SLO.
    """
    from sme.recommend.run import run_recommend

    return run_recommend(config_path, out, resume, env, poll=poll, prices=prices)
