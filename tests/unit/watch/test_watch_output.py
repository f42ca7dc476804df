"""The watch file's writer: an unwritable --out is refused before anything runs; a write that fails
midway (a full disk) leaves the file at its last complete line and says so."""

from __future__ import annotations

import errno
import json
import os

import pytest

from sme.errors import SmeError, UserError
from sme.watch.sink import SampleWriter, check_writable, read_records


def test_check_writable_creates_nothing(tmp_path):
    check_writable(tmp_path / "new" / "deeper" / "watch.jsonl", "--out")
    assert list(tmp_path.iterdir()) == []
    (tmp_path / "afile").write_text("x")
    with pytest.raises(UserError, match="afile is a file, not a directory"):
        check_writable(tmp_path / "afile" / "deeper" / "watch.jsonl", "--out")
    with pytest.raises(UserError, match="is not a regular file"):
        check_writable(tmp_path, "--out")


def test_a_write_that_fails_midway_is_cut_back_to_the_last_line(tmp_path, monkeypatch):
    path = tmp_path / "watch.jsonl"
    writer = SampleWriter(path)
    writer.open(resume=False)
    writer.write({"slot": 0})
    real_write = os.write

    def half_then_full(fd, data):  # a disk that takes half a line, then has no space left
        if len(data) > 4:
            return real_write(fd, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "write", half_then_full)
    with pytest.raises(SmeError) as info:
        writer.write({"slot": 1, "padding": "x" * 100})
    monkeypatch.undo()
    writer.close()
    assert "No space left on device" in info.value.message and "1 from this run" in info.value.message
    assert "--resume" in info.value.hint
    records, good = read_records(path)
    assert records == [{"slot": 0}] and good == path.stat().st_size
    assert json.loads(path.read_text()) == {"slot": 0}
