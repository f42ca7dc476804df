import click

from sme.commands.options import experiment_options, lock_option, parse_duration_option


@click.command("deploy")
@experiment_options
@click.option("--skip-preflight", is_flag=True, help="Deploy without the quota, network and IAM checks.")
@click.option("--dry-run", is_flag=True, help="Print the plan and change nothing.")
@click.option("--timeout", default="30m", callback=parse_duration_option, show_default=True,
              help="How long to wait for InService.")
@click.option("--poll-interval", default="15s", callback=parse_duration_option, show_default=True,
              help="How often to check the endpoint while waiting.")
@lock_option
@click.pass_obj
def command(env, skip_preflight, dry_run, timeout, poll_interval, lock_timeout, **flags):
    """Create or update an endpoint: plan, then apply (waits for InService)."""
    from sme.commands.options import load_experiment_from_flags
    from sme.deploy import DeployOptions, deploy

    exp = load_experiment_from_flags(flags)
    return deploy(exp, DeployOptions(dry_run=dry_run, timeout=timeout, poll=poll_interval,
                                     skip_preflight=skip_preflight, lock_timeout=lock_timeout), env)
