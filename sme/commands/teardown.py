import click

from sme.commands.options import aws_options, lock_option


@click.command("teardown")
@click.option("--name", help="Experiment name.")
@click.option("-c", "--config", "config_path", type=click.Path(dir_okay=False), help="Experiment file (for its name).")
@aws_options
@click.option("--sweep", "sweep_id", metavar="ID", help="Every candidate a `sme recommend` sweep left, found by "
              "its tag sme-sweep=ID in AWS (no local state needed).")
@click.option("--dry-run", is_flag=True, help="List what would be removed and remove nothing.")
@lock_option
@click.pass_obj
def command(env, name, config_path, region, profile, sweep_id, dry_run, lock_timeout):
    """Remove everything sme made for an experiment, in dependency order, and say what."""
    from sme.commands.common import experiment_name
    from sme.deploy import teardown

    if sweep_id:
        from sme.errors import UserError
        from sme.recommend.leftovers import teardown_sweep

        if name or config_path:
            raise UserError("--sweep removes a sweep's candidates; --name/-c an experiment", hint="pass one of them")
        return teardown_sweep(sweep_id, region, profile, env, dry_run, lock_timeout)

    name, region, profile = experiment_name(name, config_path, region, profile)
    return teardown(name, region, profile, env, dry_run, lock_timeout)
