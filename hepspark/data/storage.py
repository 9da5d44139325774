"""Paths, URIs and atomic publication of datasets.

Datasets are built under a temporary sibling path and renamed into place at the end, so
an interrupted run never leaves something that looks complete, and an existing dataset
is only replaced (never half-overwritten) when the user asked for ``--overwrite``.

``--overwrite`` replaces only what hepspark itself wrote (or an empty directory): every
directory hepspark publishes carries :data:`OUTPUT_MARKER` listing its entries, every file
a sidecar ``.NAME.hepspark.json`` with its size and modification time. Anything else at
an output path is refused by :func:`check_replaceable`, naming what is there.
Driver-side file operations go through Hadoop's FileSystem so that ``file://``,
``hdfs://`` and object stores behave the same way as the Spark writers.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import socket
import uuid
from collections.abc import Callable
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

METADATA_FILE = "hepspark_dataset.json"
OUTPUT_MARKER = "_hepspark_output.json"  # in every directory hepspark publishes
MAX_NAMED_ENTRIES = 5  # entries named in a refusal


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

    def is_dir(self, uri: str) -> bool:
        return bool(self._fs.getFileStatus(self._path(uri)).isDirectory())

    def write_text(self, uri: str, text: str) -> None:
        stream = self._fs.create(self._path(uri), True)
        try:
            stream.write(bytearray(text.encode("utf-8")))
        finally:
            stream.close()

    def read_text(self, uri: str) -> str:
        stream = self._fs.open(self._path(uri))
        try:
            reader = self._jvm.java.io.BufferedReader(
                self._jvm.java.io.InputStreamReader(stream, "UTF-8"))
            return "\n".join(iter(reader.readLine, None))
        finally:
            stream.close()


class LocalFileSystem:
    """The same operations as :class:`HadoopFileSystem` on local paths, without Spark."""

    def exists(self, path: str) -> bool:
        return os.path.lexists(local_path(path))

    def is_dir(self, path: str) -> bool:
        return os.path.isdir(local_path(path)) and not os.path.islink(local_path(path))

    def delete(self, path: str) -> None:
        path = local_path(path)
        if os.path.isdir(path) and not os.path.islink(path):
            shutil.rmtree(path)
        elif os.path.lexists(path):
            os.remove(path)

    def rename(self, src: str, dst: str) -> None:
        os.rename(local_path(src), local_path(dst))

    def list_names(self, path: str) -> list[str]:
        path = local_path(path)
        return sorted(os.listdir(path)) if os.path.isdir(path) else []

    def mkdirs(self, path: str) -> None:
        os.makedirs(local_path(path), exist_ok=True)

    def write_text(self, path: str, text: str) -> None:
        with open(local_path(path), "w") as handle:
            handle.write(text)

    def read_text(self, path: str) -> str:
        with open(local_path(path)) as handle:
            return handle.read()


FileSystem = HadoopFileSystem | LocalFileSystem


class NotOursError(FileExistsError):
    """An output path holds something hepspark did not write: it is never replaced."""


def mark_directory(fs: FileSystem, uri: str, what: str) -> None:
    """Record in ``uri`` that hepspark wrote it and which entries are its own."""
    entries = [name for name in fs.list_names(uri) if name != OUTPUT_MARKER]
    fs.write_text(join(uri, OUTPUT_MARKER), json.dumps(
        {"written_by": "hepspark", "what": what, "entries": entries}, indent=2) + "\n")


def _sidecar(path: str) -> str:
    parent, name = os.path.split(os.path.abspath(path))
    return os.path.join(parent, f".{name}.hepspark.json")


def mark_file(path: str, what: str) -> None:
    """Record, next to ``path``, that hepspark wrote this file (its size and mtime, so a
    file replaced or edited since is no longer ours)."""
    info = os.stat(path)
    with open(_sidecar(path), "w") as handle:
        json.dump({"written_by": "hepspark", "what": what, "size": info.st_size,
                   "mtime_ns": info.st_mtime_ns}, handle, indent=2)


def _owned_entries(fs: FileSystem, uri: str, names: list[str]) -> set[str] | None:
    """The entries of directory ``uri`` that hepspark wrote; None: not a hepspark output."""
    try:
        if OUTPUT_MARKER in names:
            marker = json.loads(fs.read_text(join(uri, OUTPUT_MARKER)))
            return {OUTPUT_MARKER, *marker["entries"]}
        if METADATA_FILE in names:  # a dataset written before the marker existed
            metadata = json.loads(fs.read_text(join(uri, METADATA_FILE)))
            return {METADATA_FILE, *(split.get("path", name) for name, split in
                                     metadata["splits"].items())}
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return None


def _named(names: list[str]) -> str:
    shown = ", ".join(names[:MAX_NAMED_ENTRIES])
    more = len(names) - MAX_NAMED_ENTRIES
    return shown + (f" and {more} more" if more > 0 else "")


def check_replaceable(uri: str, fs: FileSystem | None = None, flag: str = "--output") -> bool:
    """Whether ``uri`` exists; raises :class:`NotOursError` when it holds anything that
    hepspark did not write (so ``--overwrite`` may replace only hepspark's own output or
    an empty directory).

    >>> check_replaceable("data/higgs")          # a dataset hepspark converted: True
    >>> check_replaceable("data")                # the user's folder: NotOursError
    """
    fs = fs or LocalFileSystem()
    if not fs.exists(uri):
        return False
    how = (f"choose another {flag}, or move it away yourself if it is to be replaced")
    if not fs.is_dir(uri):
        if is_local(uri) and _file_is_ours(local_path(uri)):
            return True
        raise NotOursError(f"{flag} {uri} is a file hepspark did not write (or that changed "
                           f"since it did): it is never replaced; {how}")
    names = fs.list_names(uri)
    if not names:
        return True
    owned = _owned_entries(fs, uri, names)
    if owned is None:
        raise NotOursError(
            f"{flag} {uri} is a directory hepspark did not write (it holds "
            f"{len(names)} entr{'y' if len(names) == 1 else 'ies'}: {_named(names)}): "
            f"it is never replaced; {how}")
    owned |= {f".{name}.crc" for name in owned}  # Hadoop's local checksum files
    foreign = [name for name in names if name not in owned]
    if foreign:
        raise NotOursError(
            f"{flag} {uri} holds entries hepspark did not write ({_named(foreign)}): it is "
            "not replaced while they are there; move them out, or choose another " + flag)
    return True


def _file_is_ours(path: str) -> bool:
    try:
        with open(_sidecar(path)) as handle:
            record = json.load(handle)
        info = os.stat(path)
    except (OSError, ValueError):
        return False
    return (record.get("written_by") == "hepspark" and record.get("size") == info.st_size
            and record.get("mtime_ns") == info.st_mtime_ns)


def publish_file(tmp: str, output: str, what: str, overwrite: bool) -> None:
    """Rename the complete file ``tmp`` to ``output`` (atomic on one filesystem) and mark
    it as hepspark's. An existing ``output`` is replaced only with ``overwrite`` and only
    when hepspark wrote it (checked again here: it may have appeared meanwhile)."""
    if check_replaceable(output) and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    os.replace(tmp, output)
    mark_file(output, what)


def check_new_output(output: str, overwrite: bool) -> None:
    """Before any work: refuse an ``output`` file that exists without ``overwrite``, or
    that hepspark did not write; check that its directory can be written."""
    if check_replaceable(output) and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    check_writable_dir(os.path.dirname(os.path.abspath(output)), "--output")


def check_writable_dir(path: str, flag: str) -> str:
    """Create ``path`` if needed and prove it writable with a probe file; one clear line
    (``OSError``'s subclass ``PermissionError`` re-raised as ValueError) otherwise."""
    path = os.path.abspath(os.path.expanduser(path))
    probe = os.path.join(path, f".hepspark-probe-{os.getpid()}-{uuid.uuid4().hex[:8]}")
    try:
        os.makedirs(path, exist_ok=True)
        with open(probe, "w") as handle:
            handle.write("probe\n")
        os.remove(probe)
    except (FileExistsError, NotADirectoryError):
        raise ValueError(f"{flag} {path} is not writable (a file stands in its path, where "
                         "a directory should be): choose another directory") from None
    except OSError as exc:
        raise ValueError(f"{flag} {path} is not writable ({exc.strerror or exc}): choose a "
                         "directory you can write to") from None
    return path


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
                    "interrupted 'hepspark convert ... --overwrite' had moved aside: run "
                    "that conversion again (it puts it back first) or rename it back"
                )
            raise FileNotFoundError(
                f"dataset {dataset_uri} does not exist; create it with "
                "'hepspark convert higgs --input HIGGS.csv.gz --output DIR' (HIGGS) or "
                "'hepspark convert images --input FILE --output DIR' (images)"
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

    def __init__(self, fs: FileSystem, uri: str, overwrite: bool,
                 progress: Callable[[str], None] | None = None, what: str = "dataset") -> None:
        self.fs = fs
        self.what = what
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
        """Fail early, before any work, if the output exists and may not be replaced
        (without ``overwrite``, or because hepspark did not write it), or cannot be
        written."""
        self.recover()
        if check_replaceable(self.uri, self.fs) and not self.overwrite:
            raise FileExistsError(
                f"output {self.uri} already exists; pass --overwrite to replace it "
                "(the old dataset is kept until the new one is complete)"
            )
        if is_local(self.uri):
            check_writable_dir(os.path.dirname(local_path(self.uri)), "--output")

    def __enter__(self) -> str:
        self.check()
        return self.tmp_uri

    def __exit__(self, exc_type, exc, tb) -> None:
        if exc_type is not None:
            self.fs.delete(self.tmp_uri)
            return
        mark_directory(self.fs, self.tmp_uri, self.what)
        try:  # again: something may have appeared (or changed) there while we worked
            replaced = check_replaceable(self.uri, self.fs)
        except NotOursError as exc:
            raise NotOursError(f"{exc} (the new output is kept at {self.tmp_uri})") from None
        if replaced:
            if not self.overwrite:
                raise FileExistsError(f"output {self.uri} appeared while converting; the new "
                                      f"dataset is kept at {self.tmp_uri}")
            self.fs.rename(self.uri, self._old_uri)
        self.fs.rename(self.tmp_uri, self.uri)
        if replaced:
            self.fs.delete(self._old_uri)
