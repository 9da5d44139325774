"""Paths, URIs and atomic publication of datasets.

Datasets are built under a temporary sibling path and renamed into place at the end, so
an interrupted run never leaves something that looks complete, and an existing dataset
is only replaced (never half-overwritten) when the user asked for ``--overwrite``.
Driver-side file operations go through Hadoop's FileSystem so that ``file://``,
``hdfs://`` and object stores behave the same way as the Spark writers.
"""
from __future__ import annotations

import json
import os
import re
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

METADATA_FILE = "hepspark_dataset.json"


def to_uri(path: str) -> str:
    """``/a/b`` or ``a/b`` → ``file:///abs/a/b``; URIs with a scheme are kept as they are."""
    if urlparse(path).scheme:
        return path.rstrip("/")
    return "file://" + os.path.abspath(os.path.expanduser(path))


def is_local(uri: str) -> bool:
    return urlparse(uri).scheme in ("", "file")


def local_path(uri: str) -> str:
    """Filesystem path of a ``file://`` URI (or of a plain path)."""
    return urlparse(uri).path if urlparse(uri).scheme == "file" else uri


def join(uri: str, *parts: str) -> str:
    return "/".join([uri.rstrip("/"), *parts])


class HadoopFileSystem:
    """The few driver-side operations we need, through the JVM's Hadoop FileSystem."""

    def __init__(self, spark: "SparkSession", uri: str) -> None:
        jvm = spark.sparkContext._jvm
        self._jvm = jvm
        conf = spark.sparkContext._jsc.hadoopConfiguration()
        self._fs = jvm.org.apache.hadoop.fs.Path(uri).getFileSystem(conf)

    def _path(self, uri: str):
        return self._jvm.org.apache.hadoop.fs.Path(uri)

    def exists(self, uri: str) -> bool:
        return bool(self._fs.exists(self._path(uri)))

    def delete(self, uri: str) -> None:
        self._fs.delete(self._path(uri), True)

    def rename(self, src: str, dst: str) -> None:
        if not self._fs.rename(self._path(src), self._path(dst)):
            raise OSError(f"could not rename {src} to {dst}")

    def list_names(self, uri: str) -> list[str]:
        """Names of the entries of directory ``uri`` ([] when it does not exist)."""
        path = self._path(uri)
        if not self._fs.exists(path):
            return []
        return [status.getPath().getName() for status in self._fs.listStatus(path)]

    def mkdirs(self, uri: str) -> None:
        self._fs.mkdirs(self._path(uri))

    def write_text(self, uri: str, text: str) -> None:
        stream = self._fs.create(self._path(uri), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()


def write_metadata(fs: HadoopFileSystem, dataset_uri: str, metadata: dict[str, Any]) -> None:
    fs.write_text(join(dataset_uri, METADATA_FILE), json.dumps(metadata, indent=2) + "\n")


def read_metadata(dataset_uri: str) -> dict[str, Any]:
    """Read a dataset's metadata without Spark (pyarrow's filesystems)."""
    import pyarrow.fs

    uri = to_uri(dataset_uri)
    filesystem, path = pyarrow.fs.FileSystem.from_uri(uri)
    meta_path = path.rstrip("/") + "/" + METADATA_FILE
    info = filesystem.get_file_info(meta_path)
    if info.type == pyarrow.fs.FileType.NotFound:
        root = filesystem.get_file_info(path)
        if root.type == pyarrow.fs.FileType.NotFound:
            aside = _moved_aside(uri)
            if aside:
                raise FileNotFoundError(
                    f"dataset {dataset_uri} does not exist, but {aside} holds the dataset an "
                    "interrupted 'hepspark convert higgs --overwrite' had moved aside: run "
                    "that conversion again (it puts it back first) or rename it back"
                )
            raise FileNotFoundError(
                f"dataset {dataset_uri} does not exist; create it with "
                "'hepspark convert higgs --input HIGGS.csv.gz --output DIR'"
            )
        raise FileNotFoundError(
            f"{dataset_uri} is not a complete hepspark dataset (no {METADATA_FILE}): "
            "it may be from an interrupted conversion; convert again with --overwrite"
        )
    with filesystem.open_input_stream(meta_path) as stream:
        return json.loads(stream.read().decode("utf-8"))


def _owner_gone(host: str, pid: int) -> bool | None:
    """Whether the process that built a temporary sibling has ended: None when it ran on
    another host (it cannot be checked from here)."""
    if host != _HOST:
        return None
    return not os.path.exists(f"/proc/{pid}")


_HOST = re.sub(r"[^A-Za-z0-9]", "_", socket.gethostname())[:40] or "host"


def _moved_aside(uri: str) -> str | None:
    """A local ``NAME.old-*`` sibling holding a complete dataset, if any."""
    if not is_local(uri):
        return None
    path = local_path(uri).rstrip("/")
    parent, name = os.path.split(path)
    try:
        entries = sorted(os.listdir(parent or "."))
    except OSError:
        return None
    for entry in entries:
        full = os.path.join(parent, entry)
        if entry.startswith(name + ".old-") and os.path.exists(os.path.join(full, METADATA_FILE)):
            return full
    return None


class AtomicOutput:
    """Build a directory under a temporary sibling, then swap it into place.

    Siblings are named ``NAME.tmp-HOST-PID-TOKEN`` (the build) and ``NAME.old-HOST-PID-TOKEN``
    (the dataset being replaced, during the swap). A run killed at any point leaves either
    the old dataset at ``NAME``, or the complete new one, or - killed between the two
    renames of the swap - nothing at ``NAME`` and the old dataset at ``NAME.old-...``. The
    next run on the same output (:meth:`recover`, called by :meth:`check`) puts such an old
    dataset back and deletes the leftovers of runs whose process is gone; leftovers of a
    process on another host are reported and left alone.

    >>> with AtomicOutput(fs, "file:///data/higgs", overwrite=False) as tmp:
    ...     write_everything_under(tmp)
    """

    def __init__(self, fs: HadoopFileSystem, uri: str, overwrite: bool,
                 progress: Callable[[str], None] | None = None) -> None:
        self.fs = fs
        self.uri = uri.rstrip("/")
        self.overwrite = overwrite
        self.progress = progress or (lambda _: None)
        token = f"{_HOST}-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        self.tmp_uri = f"{self.uri}.tmp-{token}"
        self._old_uri = f"{self.uri}.old-{token}"

    def leftovers(self) -> list[tuple[str, str, str, int]]:
        """(kind 'tmp'/'old', uri, host, pid) of the siblings earlier runs left."""
        parent, name = self.uri.rsplit("/", 1)
        pattern = re.compile(re.escape(name) + r"\.(tmp|old)-(.+)-(\d+)-[0-9a-f]{8}$")
        found = []
        for entry in self.fs.list_names(parent):
            match = pattern.match(entry)
            if match:
                found.append((match[1], f"{parent}/{entry}", match[2], int(match[3])))
        return found

    def recover(self) -> None:
        """Undo what interrupted runs left: restore a replaced dataset that was moved aside
        and never replaced, delete their temporary builds."""
        leftovers = [item for item in self.leftovers() if item[1] not in
                     (self.tmp_uri, self._old_uri)]
        for kind, uri, host, pid in sorted(leftovers, key=lambda item: item[0] != "old"):
            gone = _owner_gone(host, pid)
            if gone is None:
                self.progress(f"[convert] leaving {uri} alone: left by a conversion on host "
                              f"{host} (pid {pid}); delete it if that run is over")
                continue
            if not gone:
                continue  # a conversion still running on this host
            if kind == "old" and not self.fs.exists(self.uri):
                self.fs.rename(uri, self.uri)
                self.progress(f"[convert] restored {self.uri} from {uri}: an interrupted "
                              "--overwrite had moved it aside")
            else:
                self.fs.delete(uri)
                self.progress(f"[convert] deleted {uri}, left by an interrupted conversion "
                              f"(pid {pid})")

    def check(self) -> None:
        """Fail early, before any work, if the output exists and may not be replaced."""
        self.recover()
        if self.fs.exists(self.uri) and not self.overwrite:
            raise FileExistsError(
                f"output {self.uri} already exists; pass --overwrite to replace it "
                "(the old dataset is kept until the new one is complete)"
            )

    def __enter__(self) -> str:
        self.check()
        return self.tmp_uri

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.fs.delete(self.tmp_uri)
            return
        replaced = self.fs.exists(self.uri)
        if replaced:
            if not self.overwrite:
                raise FileExistsError(f"output {self.uri} appeared while converting; the new "
                                      f"dataset is kept at {self.tmp_uri}")
            self.fs.rename(self.uri, self._old_uri)
        self.fs.rename(self.tmp_uri, self.uri)
        if replaced:
            self.fs.delete(self._old_uri)
