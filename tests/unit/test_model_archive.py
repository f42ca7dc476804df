"""sme.model_archive: a local model_data is a gzip tar with something SageMaker can serve, read as a stream."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from sme.errors import ConfigError
from sme.model_archive import check_model_archive


def archive(path: Path, *members: tuple[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in members:
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


@pytest.mark.parametrize("members, env", [
    ([("xgboost-model", b"booster")], {}),
    ([("./model.pth", b"weights")], {}),
    ([("code/inference.py", b"def model_fn(d): ...")], {}),
    ([("code/serve.py", b"...")], {"SAGEMAKER_PROGRAM": "serve.py"}),
])
def test_servable_archives_pass(tmp_path, members, env):
    check_model_archive(str(archive(tmp_path / "m.tar.gz", *members)), "sme.yaml", env)


@pytest.mark.parametrize("members, env, words", [
    ([("model/xgboost-model", b"x")], {}, "model/xgboost-model"),
    ([(".hidden", b"x")], {}, "nothing SageMaker can serve"),
    ([("code/inference.py", b"x")], {"SAGEMAKER_PROGRAM": "serve.py"}, "code/serve.py"),
    ([("/etc/passwd", b"x")], {}, "outside /opt/ml/model"),
])
def test_archives_that_cannot_be_served_are_refused(tmp_path, members, env, words):
    path = archive(tmp_path / "m.tar.gz", *members)
    with pytest.raises(ConfigError) as info:
        check_model_archive(str(path), "sme.yaml", env)
    assert info.value.field == "model.model_data" and words in info.value.message and info.value.hint


def test_only_the_members_up_to_the_first_servable_one_are_read(tmp_path):
    """A multi-GB archive costs its first members: the check stops there (so a damaged tail is the
    runtime's business, and a damaged head is refused)."""
    whole = archive(tmp_path / "m.tar.gz", ("xgboost-model", b"x" * 100), ("extra.bin", bytes(range(256)) * 4000))
    data = whole.read_bytes()
    head = tmp_path / "head.tar.gz"
    head.write_bytes(data[: len(data) // 2])
    check_model_archive(str(head), "sme.yaml")
    late = archive(tmp_path / "late.tar.gz", ("code/x", bytes(range(256)) * 4000), ("xgboost-model", b"x"))
    cut = tmp_path / "cut.tar.gz"
    cut.write_bytes(late.read_bytes()[:2000])
    with pytest.raises(ConfigError, match="not a readable tar archive"):
        check_model_archive(str(cut), "sme.yaml")


def test_files_that_are_not_archives(tmp_path):
    plain = tmp_path / "model.tar.gz"
    plain.write_bytes(b"not gzip")
    with pytest.raises(ConfigError, match="not gzip-compressed"):
        check_model_archive(str(plain), "sme.yaml")
    (tmp_path / "empty").write_bytes(b"")
    with pytest.raises(ConfigError, match="is empty"):
        check_model_archive(str(tmp_path / "empty"), "sme.yaml")
    with pytest.raises(ConfigError, match="not a file or an s3:// URI"):
        check_model_archive(str(tmp_path / "nope.tar.gz"), "sme.yaml")
