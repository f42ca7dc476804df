"""Unpack a model.tar.gz into a model directory (the container's /opt/ml/model) and work out how it is
served.

Two conventions, checked in this order, as SageMaker's containers do:
- inference toolkit: a handler script, `code/inference.py` by default (`SAGEMAKER_PROGRAM` names another
  script, `SAGEMAKER_SUBMIT_DIRECTORY` another directory); `code/requirements.txt` is reported, never
  installed;
- built-in XGBoost: the top-level files are boosters, normally one named `xgboost-model` (the container
  loads every top-level file and averages their predictions when there are several).

Nothing here imports user code or xgboost, so it is cheap enough to run before any worker starts.
"""

from __future__ import annotations

import os
import tarfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath

XGBOOST = "xgboost"
INFERENCE_SCRIPT = "inference-script"
TEXT_GENERATION = "text-generation"  # a TGI/LMI container: sme's own generator answers (textgen.py)
TEXT_GENERATION_IMAGES = ("huggingface-pytorch-tgi-inference", "text-generation-inference", "tgi-inference",
                          "djl-inference")
CONTAINER_MODEL_DIR = "/opt/ml/model"


class ModelLoadError(Exception):
    """The artifact cannot be served; the message is the reason an endpoint would show as Failed."""


@dataclass(frozen=True)
class Artifact:
    model_dir: Path
    convention: str  # XGBOOST, INFERENCE_SCRIPT or TEXT_GENERATION
    script: Path | None = None  # the handler script, for INFERENCE_SCRIPT
    model_files: tuple[Path, ...] = ()  # top-level files, the boosters for XGBOOST
    requirements: tuple[str, ...] = field(default=())  # from code/requirements.txt, not installed


def text_generation_wanted(env: dict[str, str] | os._Environ) -> bool:
    """A TGI or LMI image (SME_CONTAINER_IMAGE), or a model named by HF_MODEL_ID: such a container
    serves text generation and needs no model data (TGI loads HF_MODEL_ID itself)."""
    image = env.get("SME_CONTAINER_IMAGE", "").lower()
    return bool(env.get("HF_MODEL_ID")) or any(marker in image for marker in TEXT_GENERATION_IMAGES)


def unpack(model_tar: Path, model_dir: Path) -> None:
    """Extract `model_tar` into `model_dir`, refusing members that would land outside it."""
    if not model_tar.is_file():
        raise ModelLoadError(f"model data {model_tar} does not exist or is not a file")
    try:
        with tarfile.open(model_tar, "r:*") as tar:
            members = tar.getmembers()
            for member in members:
                _check_member(member)
            # The "data" filter also rejects what the check above allows through by accident
            # (absolute link targets, device files, setuid bits).
            tar.extractall(model_dir, members=members, filter="data")
    except tarfile.TarError as e:
        raise ModelLoadError(f"model data {model_tar.name} is not a readable tar archive: {e}") from e


def _check_member(member: tarfile.TarInfo) -> None:
    path = PurePosixPath(member.name)
    if path.is_absolute() or ".." in path.parts:
        raise ModelLoadError(f"model.tar.gz member {member.name!r} would be extracted outside the model directory")
    if member.issym() or member.islnk():
        target = PurePosixPath(member.linkname)
        if target.is_absolute() or ".." in target.parts:
            raise ModelLoadError(f"model.tar.gz member {member.name!r} links outside the model directory")
    if not (member.isfile() or member.isdir() or member.issym() or member.islnk()):
        raise ModelLoadError(f"model.tar.gz member {member.name!r} is not a regular file or directory")


def inspect(model_dir: Path, env: dict[str, str] | None = None) -> Artifact:
    """Decide the serving convention of an unpacked model directory."""
    env = os.environ if env is None else env
    code_dir = _code_dir(model_dir, env)
    program = env.get("SAGEMAKER_PROGRAM", "")
    script = code_dir / (program or "inference.py")
    top_files = tuple(
        sorted(p for p in model_dir.iterdir() if p.is_file() and not p.name.startswith("."))
    )
    if script.is_file():
        return Artifact(model_dir, INFERENCE_SCRIPT, script=script, model_files=top_files,
                        requirements=_requirements(code_dir / "requirements.txt"))
    if program:
        raise ModelLoadError(f"SAGEMAKER_PROGRAM is {program!r} but {_shown(script, model_dir)} is not in the model data")
    if not top_files:
        names = sorted(str(p.relative_to(model_dir)) for p in model_dir.rglob("*"))[:10]
        raise ModelLoadError(
            "model data has neither an xgboost-model member nor code/inference.py "
            f"(members: {', '.join(names) or 'none'})"
        )
    return Artifact(model_dir, XGBOOST, model_files=top_files)


def _code_dir(model_dir: Path, env: dict[str, str] | os._Environ) -> Path:
    submit = env.get("SAGEMAKER_SUBMIT_DIRECTORY", "")
    if submit.startswith(CONTAINER_MODEL_DIR):  # a path inside the container: map it into ours
        return model_dir / submit[len(CONTAINER_MODEL_DIR):].lstrip("/")
    if submit and not submit.startswith("s3://") and Path(submit).is_dir():
        return Path(submit)
    return model_dir / "code"  # unset, or an S3 source bundle, which the runtime cannot fetch


def _shown(path: Path, model_dir: Path) -> str:
    try:
        return str(path.relative_to(model_dir))
    except ValueError:
        return str(path)


def _requirements(path: Path) -> tuple[str, ...]:
    if not path.is_file():
        return ()
    lines = (line.split("#", 1)[0].strip() for line in path.read_text(errors="replace").splitlines())
    return tuple(line for line in lines if line)
