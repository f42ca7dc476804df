"""Is a local ``model_data`` file a model archive SageMaker can serve? Checked before any call to AWS.

SageMaker downloads ``model.tar.gz``, unpacks it into /opt/ml/model and starts the container on it, so a
file that is not a gzip-compressed tar (a typo'd path, /etc/shadow, a bare booster) fails only after an
upload, a model, an endpoint config and a ~10-minute endpoint creation. Here it fails at once, with why.

The members are read as a stream and the check stops at the first member that makes the archive servable,
so a multi-GB archive costs no more than its first few members: a regular file at the top (XGBoost's
``xgboost-model``, any framework's weights) or the handler script under ``code/`` (``inference.py`` or
``SAGEMAKER_PROGRAM``), the two conventions of sme/local/runtime/artifact.py.
"""

from __future__ import annotations

import os
import stat
import tarfile
from pathlib import Path, PurePosixPath

from sme.errors import ConfigError

GZIP_MAGIC = b"\x1f\x8b"
MAX_MEMBERS_SCANNED = 10_000  # an archive whose first 10,000 members hold nothing servable is not a model
FIELD = "model.model_data"


def check_model_archive(path_text: str, source: str, environment: dict[str, str] | None = None) -> None:
    """Raise ConfigError (naming the file, the field and the fix) unless ``path_text`` is a servable archive."""
    path = Path(path_text).expanduser()
    _check_file(path, path_text, source)
    program = (environment or {}).get("SAGEMAKER_PROGRAM") or "inference.py"
    seen: list[str] = []
    try:
        with tarfile.open(path, "r|gz") as tar:
            for member in tar:
                seen.append(member.name)
                _check_member(member, path_text, source)
                if _servable(member, program):
                    return
                if len(seen) >= MAX_MEMBERS_SCANNED:
                    break
    except (tarfile.TarError, EOFError, OSError) as exc:
        raise _refuse(source, path_text, f"is not a readable tar archive inside its gzip ({exc})") from None
    shown = ", ".join(seen[:5]) + (", ..." if len(seen) > 5 else "") if seen else "no members"
    raise _refuse(source, path_text, f"holds nothing SageMaker can serve ({shown}); it needs a model file "
                  f"at the top (such as xgboost-model) or code/{program}",
                  hint="SageMaker unpacks the archive into /opt/ml/model: create it from inside the model "
                       "directory, e.g. `tar -czf model.tar.gz -C model_dir .`")


def _check_file(path: Path, path_text: str, source: str) -> None:
    from sme.schema import os_reason

    try:
        info = os.stat(path)
        if not stat.S_ISREG(info.st_mode):
            raise _refuse(source, path_text, "is not a regular file")
        if info.st_size == 0:
            raise _refuse(source, path_text, "is empty")
        with open(path, "rb") as fh:
            magic = fh.read(2)
    except FileNotFoundError:
        raise ConfigError(source, FIELD, f"{path_text!r} is not a file or an s3:// URI",
                          hint="give the path of a model.tar.gz or an s3://bucket/key URI") from None
    except OSError as exc:
        raise _refuse(source, path_text, f"cannot be read ({os_reason(exc)})") from None
    if magic != GZIP_MAGIC:
        raise _refuse(source, path_text, "is not gzip-compressed, so it is not a model.tar.gz")


def _check_member(member: tarfile.TarInfo, path_text: str, source: str) -> None:
    name = PurePosixPath(member.name)
    if name.is_absolute() or ".." in name.parts:
        raise _refuse(source, path_text, f"has a member {member.name!r} that would unpack outside /opt/ml/model")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise _refuse(source, path_text, f"has a member {member.name!r} that is a device or pipe, not a file")


def _servable(member: tarfile.TarInfo, program: str) -> bool:
    if not member.isfile():
        return False
    parts = [p for p in PurePosixPath(member.name).parts if p != "."]
    if len(parts) == 1:
        return not parts[0].startswith(".")
    return parts == ["code", *PurePosixPath(program).parts]


def _refuse(source: str, path_text: str, problem: str, hint: str | None = None) -> ConfigError:
    return ConfigError(source, FIELD, f"{path_text!r} {problem}",
                       hint=hint or "give the path of a model.tar.gz (a gzip-compressed tar of the model "
                                    "directory), or an s3://bucket/key URI")
