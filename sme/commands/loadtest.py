"""`sme loadtest`: declares options only; the work is in sme.loadtest.runner (imported when run)."""

import click


@click.command("loadtest")
@click.option("-c", "--config", "config_path", required=True, type=click.Path(dir_okay=False),
              help="Load-test file (target, payload, stages, slo); see examples/loadtest.yaml.")
@click.option("--out", help="Directory for summary.json, timeseries.csv and locust.html (not with --worker).")
@click.option("--master", "as_master", is_flag=True,
              help="Run as the master of Locust's distributed mode; workers on other machines join it.")
@click.option("--expect-workers", type=click.IntRange(min=1), default=1, show_default=True,
              help="With --master: how many workers to wait for before starting.")
@click.option("--worker", "as_worker", is_flag=True,
              help="Run as a worker for a master started with --master (uses the file's `processes`).")
@click.option("--master-host", default="127.0.0.1", show_default=True, help="With --worker: the master's address.")
@click.option("--master-port", type=click.IntRange(1, 65535), default=5557, show_default=True,
              help="The master's port (bound by --master, dialled by --worker).")
@click.pass_obj
def command(env, config_path, out, as_master, expect_workers, as_worker, master_host, master_port):
    """Load-test an endpoint, its front door or any HTTP URL with Locust; check the SLO.

    Exits 0 when every SLO check passes, 3 when one fails, 130 when stopped early (partial results).
    """
    from sme.errors import UserError
    from sme.loadtest.runner import Mode, run_loadtest

    if as_master and as_worker:
        raise UserError("--master and --worker exclude each other", hint="pick one role per process")
    role = "master" if as_master else "worker" if as_worker else "local"
    mode = Mode(role, master_host, master_port, expect_workers)
    return run_loadtest(config_path, out, mode, env)
