"""Atomic publication: the states a killed conversion can leave, and what the next run does
with them (real directories through Spark's Hadoop FileSystem)."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest

from hepspark.data import storage
from hepspark.data.storage import METADATA_FILE, AtomicOutput, HadoopFileSystem


def dead_pid() -> int:
    proc = subprocess.Popen([sys.executable, "-c", "pass"])
    proc.wait()
    return proc.pid


def make_dataset(path, marker: str) -> None:
    os.makedirs(path)
    (open(os.path.join(path, METADATA_FILE), "w")).write("{}")
    open(os.path.join(path, marker), "w").close()


def leftover(out: str, kind: str, pid: int, host: str | None = None) -> str:
    return f"{out}.{kind}-{host or storage._HOST}-{pid}-0123abcd"


def test_killed_between_the_two_renames_the_next_run_restores_the_old_dataset(spark, tmp_path):
    out = str(tmp_path / "ds")
    pid = dead_pid()
    make_dataset(leftover(out, "old", pid), "old-dataset")  # moved aside ...
    make_dataset(leftover(out, "tmp", pid), "new-dataset")  # ... new one not yet renamed
    with pytest.raises(FileNotFoundError, match="moved aside.*run that conversion again"):
        storage.read_metadata(out)
    messages: list[str] = []
    fs = HadoopFileSystem(spark, storage.to_uri(out))
    AtomicOutput(fs, storage.to_uri(out), overwrite=True, progress=messages.append).check()
    assert os.path.exists(os.path.join(out, "old-dataset"))
    assert sorted(os.listdir(tmp_path)) == ["ds"]
    assert any("restored" in m for m in messages) and any("deleted" in m for m in messages)
    storage.read_metadata(out)


def test_killed_while_deleting_the_replaced_dataset_keeps_the_new_one(spark, tmp_path):
    out = str(tmp_path / "ds")
    make_dataset(out, "new-dataset")
    make_dataset(leftover(out, "old", dead_pid()), "old-dataset")
    fs = HadoopFileSystem(spark, storage.to_uri(out))
    with pytest.raises(FileExistsError, match="--overwrite"):  # still refused without it
        AtomicOutput(fs, storage.to_uri(out), overwrite=False).check()
    assert sorted(os.listdir(tmp_path)) == ["ds"]
    assert os.path.exists(os.path.join(out, "new-dataset"))


def test_leftovers_of_running_or_remote_conversions_are_left_alone(spark, tmp_path):
    out = str(tmp_path / "ds")
    running = leftover(out, "tmp", os.getpid())  # this process: still running
    remote = leftover(out, "tmp", 1234, host="other_host")
    unrelated = str(tmp_path / "ds.tmp-notours")
    for path in (running, remote, unrelated):
        os.makedirs(path)
    messages: list[str] = []
    fs = HadoopFileSystem(spark, storage.to_uri(out))
    AtomicOutput(fs, storage.to_uri(out), overwrite=False, progress=messages.append).check()
    assert all(os.path.exists(p) for p in (running, remote, unrelated))
    assert messages == [f"[convert] leaving file://{remote} alone: left by a conversion on "
                        "host other_host (pid 1234); delete it if that run is over"]
