"""The one set of exit statuses and the exceptions that map to them.

Everything below the CLI raises these; only `sme.cli.main` turns them into a message and an exit code.
"""

from __future__ import annotations

import enum


class ExitStatus(enum.IntEnum):
    OK = 0
    ERROR = 1  # AWS or runtime error
    USAGE = 2  # bad input: config, flags, files
    SLO_FAILED = 3  # a load test ran but an SLO check failed
    DEPLOY_FAILED = 4  # the endpoint went Failed or SageMaker rolled the update back
    TIMEOUT = 5  # a wait ran past its limit
    PREFLIGHT_FAILED = 6  # preflight found a blocking problem; nothing was changed
    INTERRUPTED = 130  # Ctrl-C / SIGTERM; partial results are marked as such


class SmeError(Exception):
    """An error with a message meant for the user, and the exit status it maps to."""

    status = ExitStatus.ERROR

    def __init__(self, message: str, *, hint: str | None = None, status: ExitStatus | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint
        if status is not None:
            self.status = status

    def render(self) -> str:
        """One line: what is wrong, then the fix."""
        return f"{self.message} (fix: {self.hint})" if self.hint else self.message


class UserError(SmeError):
    """Bad input: a config file, a flag, a missing file. Exit 2, nothing changed."""

    status = ExitStatus.USAGE


class ConfigError(UserError):
    """A field of a config file is wrong: names the file, the field and what would be valid."""

    def __init__(self, source: str, field: str, problem: str, *, hint: str | None = None):
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {problem}", hint=hint)
        self.source = source
        self.field = field


class AwsError(SmeError):
    """An AWS call failed: names the operation and the resource."""

    def __init__(self, operation: str, resource: str, message: str, code: str = ""):
        code_part = f" ({code})" if code else ""
        super().__init__(f"AWS {operation} on {resource} failed{code_part}: {message}")
        self.operation = operation
        self.resource = resource
        self.code = code


class DeployFailed(SmeError):
    status = ExitStatus.DEPLOY_FAILED


class WaitTimeout(SmeError):
    status = ExitStatus.TIMEOUT


class Interrupted(SmeError):
    status = ExitStatus.INTERRUPTED
