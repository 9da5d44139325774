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
import uuid
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


class AtomicOutput:
    """Build a directory under a temporary sibling, then swap it into place.

    >>> with AtomicOutput(fs, "file:///data/higgs", overwrite=False) as tmp:
    ...     write_everything_under(tmp)
    """

    def __init__(self, fs: HadoopFileSystem, uri: str, overwrite: bool) -> None:
        self.fs = fs
        self.uri = uri.rstrip("/")
        self.overwrite = overwrite
        token = uuid.uuid4().hex[:8]
        self.tmp_uri = f"{self.uri}.tmp-{token}"
        self._old_uri = f"{self.uri}.old-{token}"

    def check(self) -> None:
        """Fail early, before any work, if the output exists and may not be replaced."""
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
            self.check()
            self.fs.rename(self.uri, self._old_uri)
        self.fs.rename(self.tmp_uri, self.uri)
        if replaced:
            self.fs.delete(self._old_uri)
