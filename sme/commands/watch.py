import click

from sme.commands.options import aws_options, parse_duration_option


@click.command("watch")
@click.option("--name", help="Experiment name (its endpoint is watched).")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Experiment file (for its name).")
@click.option("--endpoint", help="Watch this endpoint by name (no experiment needed).")
@aws_options
@click.option("--subnet", "subnets", multiple=True,
              help="Subnet to watch (repeatable; default: the subnets of the endpoint's model VpcConfig).")
@click.option("--interval", callback=parse_duration_option, help="Time between samples, 1s to 1d.  [default: 60s]")
@click.option("--duration", callback=parse_duration_option, help="Stop after this long (default: until Ctrl-C).")
@click.option("--once", is_flag=True, help="Take one sample now and stop.")
@click.option("--out", type=click.Path(dir_okay=False), help="Append one JSON line per sample to this file.")
@click.option("--resume", is_flag=True, help="Continue the --out file's schedule from its next slot.")
@click.option("--json", "as_json", is_flag=True, help="Print each sample as a JSON line on stdout.")
@click.option("--metric", "metrics", multiple=True, metavar="NAME[:STAT]",
              help="CloudWatch metric to read (repeatable or comma list; default: all SageMaker endpoint metrics).")
@click.option("--p99", is_flag=True, help="Also read p99 of ModelLatency and OverheadLatency (and of a front door's Latency and "
                   "IntegrationLatency).")
@click.option("--alert-headroom", default=10, show_default=True, type=int,
              help="Alert when fewer free addresses than this remain.")
@click.option("--to-csv", "to_csv", type=click.Path(dir_okay=False),
              help="Write the --out file as CSV (one column per series) when the watch ends; "
                   "with no endpoint given, just convert.")
@click.pass_obj
def command(env, name, config_path, endpoint, region, profile, subnets, interval, duration, once, out, resume,
            as_json, metrics, p99, alert_headroom, to_csv):
    """Sample an endpoint's metrics, instances, scaling and subnet headroom on a fixed schedule.

    An experiment deployed with a front door (`gateway:`) also gets its API Gateway and Lambda metrics.
    """
    from pathlib import Path

    from sme.errors import UserError
    from sme.vpcwatch import WatchOptions, run_watch

    if to_csv and not (name or config_path or endpoint):
        from sme.watch.sink import export_csv

        if not out:
            raise UserError("--to-csv needs the watch file to convert", hint="pass --out FILE.jsonl")
        rows = export_csv(Path(out), Path(to_csv))
        env.info(f"wrote {to_csv} ({rows} rows)")
        return 0
    exp = None
    if not endpoint or name or config_path:
        from sme.commands.common import experiment_name
        from sme.state import load_state

        exp, region, profile = experiment_name(name, config_path, region, profile)
        region = region or load_state(exp).region or None
        endpoint = endpoint or exp
    opts = WatchOptions(endpoint=endpoint, experiment=exp, region=region, profile=profile, subnets=tuple(subnets),
                        interval=interval, duration=duration, once=once, out=Path(out) if out else None,
                        resume=resume, as_json=as_json, metrics=tuple(metrics), p99=p99,
                        alert_headroom=alert_headroom, to_csv=Path(to_csv) if to_csv else None)
    _sigterm_as_interrupt()
    return run_watch(opts, env)


def _sigterm_as_interrupt():
    """SIGTERM stops a watch the way Ctrl-C does: the file is complete up to its last line."""
    import signal
    import threading

    def stop(signum, frame):
        raise KeyboardInterrupt

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)
