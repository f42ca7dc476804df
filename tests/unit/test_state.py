"""The deploy state file: saves merge with what another writer saved and never drop a record; the directory
and file stay private whatever the umask; the experiment lock names its holder."""

from __future__ import annotations

import os
import stat

import pytest

from sme.state import DeployState, StateLocked, experiment_lock, load_state, save_state


@pytest.fixture
def state_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("SME_STATE_DIR", str(tmp_path / ".sme"))
    return tmp_path / ".sme"


def test_a_save_keeps_what_another_writer_recorded_and_drops_only_what_it_forgot(state_dir):
    mine, theirs = DeployState("churn"), DeployState("churn")
    mine.record("model", "m1")
    save_state(mine)
    theirs.record("endpoint-config", "c1")
    theirs.secrets["api_key"] = "k"
    save_state(theirs)  # theirs never saw m1: it must not drop it
    mine.record("endpoint", "churn")
    mine.forget("model", "m1")
    save_state(mine)  # mine never saw c1 or the key: they stay; m1 it forgot goes
    on_disk = load_state("churn")
    assert sorted((r.kind, r.name) for r in on_disk.resources) == [("endpoint", "churn"), ("endpoint-config", "c1")]
    assert on_disk.secrets == {"api_key": "k"}
    mine.drop_secret("api_key")
    save_state(mine)
    assert load_state("churn").secrets == {}


def test_the_state_directory_and_file_are_private_under_a_zero_umask(state_dir):
    old = os.umask(0)
    try:
        save_state(DeployState("churn"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(state_dir.stat().st_mode) == 0o700
    assert stat.S_IMODE((state_dir / "churn.json").stat().st_mode) == 0o600


def test_a_held_lock_refuses_naming_its_holder_or_waits_until_the_deadline(state_dir):
    now = [0.0]
    said = []
    with experiment_lock("churn", "deploy"):
        with pytest.raises(StateLocked, match=rf"locked by `sme deploy` \(pid {os.getpid()} "):
            with experiment_lock("churn", "teardown", wait=1.0, say=said.append, clock=lambda: now[0],
                                 sleep=lambda s: now.__setitem__(0, now[0] + s)):
                pass
    assert now[0] >= 1.0 and len(said) == 1 and "waiting for the lock on churn" in said[0]
    with experiment_lock("churn", "teardown"):  # released when its holder leaves
        pass
