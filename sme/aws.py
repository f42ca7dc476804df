"""The one place AWS clients come from.

Every client shares a botocore Config (standard retries, user agent ``sme/<version>``) and honours the
profile, the region and ``AWS_ENDPOINT_URL`` (which is how tests and `sme local` point sme at a moto
server on loopback). boto3 is imported here, lazily, never on the CLI's start-up path.
"""

from __future__ import annotations

import contextlib
import os
import re
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator

from sme import __version__
from sme.errors import AwsError, UserError

REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")


@dataclass
class AwsContext:
    """Where sme talks to: profile, region and endpoint override. Clients are made once and cached."""

    profile: str | None = None
    region: str | None = None
    endpoint_url: str | None = None
    max_attempts: int = 5
    _session: Any = field(default=None, repr=False)
    _clients: dict = field(default_factory=dict, repr=False)
    _account: str | None = field(default=None, repr=False)

    @classmethod
    def from_settings(cls, profile: str | None, region: str | None, **kw: Any) -> "AwsContext":
        region = region or os.environ.get("AWS_REGION") or None  # boto3 itself reads only AWS_DEFAULT_REGION
        return cls(profile=profile, region=region, endpoint_url=os.environ.get("AWS_ENDPOINT_URL"), **kw)

    @property
    def session(self) -> Any:
        if self._session is None:
            import boto3.session
            import botocore.exceptions

            try:
                self._session = boto3.session.Session(profile_name=self.profile, region_name=self.region)
            except botocore.exceptions.ProfileNotFound:
                raise UserError(
                    f"AWS profile {self.profile!r} is not in your AWS config",
                    hint="use a profile listed by `aws configure list-profiles`, or drop `profile:`",
                ) from None
            if not self._session.region_name:
                raise UserError(
                    "no AWS region is set",
                    hint="set `region:` in the experiment file, pass --region, or export AWS_REGION",
                )
            if not REGION.fullmatch(self._session.region_name):  # botocore's own check lets "us-east-1\n" by
                raise UserError(f"{self._session.region_name!r} is not an AWS region",
                                hint="give a region such as us-east-1 or eu-west-1 (--region, `region:` or AWS_REGION)")
            self.region = self._session.region_name
        return self._session

    def client(self, service: str) -> Any:
        if service not in self._clients:
            from botocore.config import Config

            config = Config(
                retries={"mode": "standard", "max_attempts": self.max_attempts},
                user_agent_extra=f"sme/{__version__}",
                connect_timeout=10,
                read_timeout=60,
            )
            kwargs: dict[str, Any] = {"config": config}
            if self.endpoint_url:
                kwargs["endpoint_url"] = self.endpoint_url
            self._clients[service] = self.session.client(service, **kwargs)
        return self._clients[service]

    def credentials(self) -> Any:
        """Refreshable credentials (for SigV4 signing outside boto3)."""
        creds = self.session.get_credentials()
        if creds is None:
            raise no_credentials()
        return creds

    @property
    def account_id(self) -> str:
        if self._account is None:
            with aws_call("sts:GetCallerIdentity", "the current credentials"):
                self._account = self.client("sts").get_caller_identity()["Account"]
        return self._account


LOCAL_AWS_PORT = 4566  # `sme local start`'s default port
AWS_HINT = "configure a profile (`aws configure`), or export AWS_ACCESS_KEY_ID/AWS_SECRET_ACCESS_KEY"


def no_credentials(port: int = LOCAL_AWS_PORT) -> UserError:
    """"No credentials", with the likely fix: often the user started `sme local start` in another shell and
    did not export what it printed, so sme is about to talk to AWS itself."""
    endpoint = os.environ.get("AWS_ENDPOINT_URL")
    local_exports = "AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and AWS_REGION"
    if endpoint and is_loopback(endpoint):
        hint = (f"AWS_ENDPOINT_URL points at a local AWS ({endpoint}): export the rest of what `sme local start` "
                f"printed ({local_exports})")
    elif not endpoint and local_aws_answers(port):
        hint = (f"a local AWS answers on http://127.0.0.1:{port} (`sme local start`): to use it, export what it "
                f"printed (AWS_ENDPOINT_URL=http://127.0.0.1:{port}, {local_exports}); for AWS itself, {AWS_HINT}")
    else:
        hint = f"{AWS_HINT}; for a local AWS, run `sme local start` and export what it prints"
    return UserError("no AWS credentials found", hint=hint)


def is_loopback(url: str) -> bool:
    from urllib.parse import urlsplit

    host = urlsplit(url).hostname or ""
    return host in ("localhost", "::1") or host.startswith("127.")


def local_aws_answers(port: int, timeout: float = 0.2) -> bool:
    """Whether something accepts connections on 127.0.0.1:port (one connect, at most ``timeout`` seconds)."""
    import socket

    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout):
            return True
    except OSError:
        return False


def error_code(exc: BaseException) -> str:
    response = getattr(exc, "response", None) or {}
    return str(response.get("Error", {}).get("Code", ""))


NOT_FOUND_CODES = {
    "ValidationException",  # SageMaker's "Could not find ..."
    "NoSuchEntity",
    "NoSuchBucket",
    "NoSuchKey",
    "404",
    "NotFound",
    "NotFoundException",
    "ResourceNotFoundException",
    "ObjectNotFound",
    "ObjectNotFoundException",  # Application Auto Scaling
    "NoSuchPublicAccessBlockConfiguration",  # S3: a bucket without a public access block
    "NoSuchTagSet",  # S3: a bucket without tags
    "NoSuchUpload",
}


def is_not_found(exc: BaseException) -> bool:
    code = error_code(exc)
    if code == "ValidationException":
        text = str(exc).lower()
        return "could not find" in text or "does not exist" in text or "not found" in text
    return code in NOT_FOUND_CODES


def if_found(operation: str, resource: str, call: Callable[[], Any]) -> Any | None:
    """Make one call; None when AWS says the resource does not exist. Every "not found means gone" (a
    describe that finds nothing, a delete of what is already deleted) goes through here."""
    try:
        with aws_call(operation, resource):
            return call()
    except AwsError as exc:
        if is_not_found(exc.__cause__ or exc):
            return None
        raise


def named_item(operation: str, name: str, call: Callable[[], Any], key: str = "items") -> dict[str, Any] | None:
    """The item of a listing (API Gateway's ``items``) whose ``name`` is ``name``: sme's names are unique per
    experiment, so that is how its pieces without a fixed id are found."""
    with aws_call(operation, name):
        return next((i for i in call()[key] if i.get("name") == name), None)


@contextlib.contextmanager
def aws_call(operation: str, resource: str) -> Iterator[None]:
    """Turn botocore failures into an AwsError that names the operation and the resource."""
    import boto3.exceptions
    import botocore.exceptions

    try:
        yield
    except botocore.exceptions.ClientError as exc:
        err = exc.response.get("Error", {})
        raise AwsError(operation, resource, err.get("Message") or str(exc), err.get("Code", "")) from exc
    except boto3.exceptions.S3UploadFailedError as exc:  # (upload_file's: S3's own error is the one it replaced)
        cause = exc.__context__
        if isinstance(cause, botocore.exceptions.ClientError):
            err = cause.response.get("Error", {})
            raise AwsError(operation, resource, err.get("Message") or str(cause), err.get("Code", "")) from exc
        raise AwsError(operation, resource, str(exc)) from exc
    except (botocore.exceptions.NoCredentialsError, botocore.exceptions.PartialCredentialsError):
        raise no_credentials() from None
    except botocore.exceptions.EndpointConnectionError as exc:
        raise AwsError(operation, resource, f"cannot reach {exc.kwargs.get('endpoint_url', 'AWS')}") from exc
