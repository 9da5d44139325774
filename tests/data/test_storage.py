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
    """A directory as a conversion publishes it: metadata, one entry, the output marker."""
    os.makedirs(path)
    (open(os.path.join(path, METADATA_FILE), "w")).write('{"splits": {}}')
    open(os.path.join(path, marker), "w").close()
    storage.mark_directory(storage.LocalFileSystem(), path, "dataset")


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


@pytest.mark.parametrize("through", ["hadoop", "local"])
def test_overwrite_never_replaces_a_directory_hepspark_did_not_write(spark, tmp_path, through):
    out = tmp_path / "data"
    out.mkdir()
    (out / "higgs.csv").write_text("1,2,3\n")
    (out / "notes.txt").write_text("mine\n")
    fs = (HadoopFileSystem(spark, storage.to_uri(str(out))) if through == "hadoop"
          else storage.LocalFileSystem())
    with pytest.raises(storage.NotOursError, match=r"did not write.*higgs\.csv, notes\.txt"):
        AtomicOutput(fs, storage.to_uri(str(out)), overwrite=True).check()
    assert sorted(os.listdir(out)) == ["higgs.csv", "notes.txt"]


def test_overwrite_refuses_a_dataset_holding_files_of_the_user(spark, tmp_path):
    out = str(tmp_path / "ds")
    make_dataset(out, "part-0")
    open(os.path.join(out, "my-analysis.ipynb"), "w").close()
    fs = HadoopFileSystem(spark, storage.to_uri(out))
    with pytest.raises(storage.NotOursError, match="my-analysis.ipynb"):
        AtomicOutput(fs, storage.to_uri(out), overwrite=True).check()


def test_overwrite_replaces_its_own_dataset_and_an_empty_directory(spark, tmp_path):
    for out, own in ((str(tmp_path / "ds"), True), (str(tmp_path / "empty"), False)):
        make_dataset(out, "old") if own else os.makedirs(out)
        fs = HadoopFileSystem(spark, storage.to_uri(out))
        with AtomicOutput(fs, storage.to_uri(out), overwrite=True) as tmp_uri:
            make_dataset(storage.local_path(tmp_uri), "new")
        published = [n for n in os.listdir(out) if not n.endswith(".crc")]
        assert sorted(published) == sorted([METADATA_FILE, "new", storage.OUTPUT_MARKER])


def test_a_legacy_dataset_is_ours_only_with_its_split_directories(tmp_path):
    out = tmp_path / "legacy"
    out.mkdir()
    (out / METADATA_FILE).write_text('{"splits": {"train": {"path": "train"}}}')
    (out / "train").mkdir()
    assert storage.check_replaceable(str(out))
    (out / "higgs.csv").write_text("x")
    with pytest.raises(storage.NotOursError, match="higgs.csv"):
        storage.check_replaceable(str(out))


def test_files_are_ours_only_while_unchanged(tmp_path):
    path = tmp_path / "sample.csv.gz"
    path.write_bytes(b"generated")
    with pytest.raises(storage.NotOursError, match="did not write"):
        storage.check_replaceable(str(path))
    storage.mark_file(str(path), "generate higgs")
    assert storage.check_replaceable(str(path))
    path.write_bytes(b"the user's real data, written over it")
    with pytest.raises(storage.NotOursError, match="changed"):
        storage.check_replaceable(str(path))
