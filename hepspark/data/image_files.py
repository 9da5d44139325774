"""Image arrays on disk: NPZ and HDF5 files (and ROOT files through uproot), read and
written the same way for generated and for real data.

A file holds three arrays of equal length, found by name: the images ``[N, H, W]`` or
``[N, H, W, C]``, the integer labels ``[N]`` and, optionally, per-image weights ``[N]``.
The names default to ``images``, ``labels``, ``weights`` and can be anything
(``ArrayNames``), e.g. ``hepspark convert images --images-key X --labels-key y``.

Generated samples (:func:`write_generated`) are made in chunks of ``CHUNK_ROWS``, chunk
``i`` seeded by ``SeedSequence([seed, i])``: the same bytes whether the chunks run here or
on Spark executors. The output is one ``.npz`` file, one ``.h5`` file (appended chunk by
chunk, never all in memory), or a directory of ``part-NNNNN.npz`` shards (any other name);
it is written under a temporary name and renamed when complete.

>>> write_generated("jets", "jets.h5", rows=10_000, seed=1)
>>> f = open_image_file("jets.h5")
>>> f.rows, f.image_shape
(10000, (33, 33, 2))
"""
from __future__ import annotations

import glob
import io
import os
import shutil
import time
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from hepspark.data import storage
from hepspark.progress import Progress

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

CHUNK_ROWS = 5_000
SPARK_MIN_ROWS = 50_000  # below this, starting executors costs more than it saves
HDF5_SUFFIXES = (".h5", ".hdf5")
ROOT_SUFFIXES = (".root",)
FILE_SUFFIXES = (".npz", *HDF5_SUFFIXES, *ROOT_SUFFIXES)


@dataclass(frozen=True)
class ArrayNames:
    """Names of the image, label and (optional) weight arrays inside a file."""

    images: str = "images"
    labels: str = "labels"
    weights: str | None = "weights"


# ---------------------------------------------------------------------------- generation
GENERATORS = ("jets", "lartpc")


def generate_chunk(kind: str, index: int, n_rows: int, seed: int, options: dict):
    """Images, labels, weights of chunk ``index`` (runs on executors)."""
    sequence = np.random.SeedSequence([seed, index])
    if kind == "jets":
        from hepspark.data.jet_images import generate_jets

        return generate_jets(n_rows, sequence, **options)
    if kind == "lartpc":
        from hepspark.data.lartpc_images import generate_lartpc

        return generate_lartpc(n_rows, sequence, **options)
    raise ValueError(f"kind must be one of {GENERATORS}, got {kind!r}")


def class_names(kind: str) -> tuple[str, ...]:
    if kind == "jets":
        from hepspark.data.jet_images import CLASS_NAMES
    else:
        from hepspark.data.lartpc_images import CLASS_NAMES
    return CLASS_NAMES


def npz_bytes(images: np.ndarray, labels: np.ndarray, weights: np.ndarray, **extra) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=images, labels=labels, weights=weights, **extra)
    return buffer.getvalue()


def _chunk_blob(kind, index, n_rows, seed, options, names) -> bytes:
    images, labels, weights = generate_chunk(kind, index, n_rows, seed, options)
    return npz_bytes(images, labels, weights, class_names=np.array(names))


def write_generated(
    kind: str,
    output: str,
    rows: int,
    seed: int = 42,
    spark: "SparkSession | None" = None,
    overwrite: bool = False,
    progress: Callable[[str], None] = print,
    **options,
) -> dict:
    """Generate ``rows`` images of ``kind`` (``jets`` or ``lartpc``) into ``output``.

    ``options`` go to the generator (e.g. ``image_size=32`` for lartpc). With ``spark`` the
    chunks are generated on the executors and come back compressed; the driver writes them
    in order. Returns a summary (rows, bytes, seconds, output).
    """
    if kind not in GENERATORS:
        raise ValueError(f"kind must be one of {GENERATORS}, got {kind!r}")
    if rows < 1:
        raise ValueError(f"rows must be >= 1, got {rows}")
    storage.check_new_output(output, overwrite)
    generate_chunk(kind, 0, 1, seed, options)  # bad options fail here, not on an executor
    names = class_names(kind)
    parent = os.path.dirname(os.path.abspath(output))
    full, rest = divmod(rows, CHUNK_ROWS)
    sizes = [CHUNK_ROWS] * full + ([rest] if rest else [])
    start = time.perf_counter()
    tmp = os.path.join(parent, f".{os.path.basename(output)}.tmp-{os.getpid()}")
    blobs = _blobs(kind, sizes, seed, options, names, spark)
    try:
        written = _write_blobs(output, tmp, blobs, sizes, rows, progress)
        if os.path.isdir(tmp):
            _publish_directory(tmp, output, kind, overwrite)
        else:
            storage.publish_file(tmp, output, f"generate {kind}", overwrite)
    except BaseException:
        if os.path.isdir(tmp):
            shutil.rmtree(tmp)
        elif os.path.exists(tmp):
            os.remove(tmp)
        raise
    return {"rows": rows, "bytes": written, "seconds": time.perf_counter() - start,
            "output": os.path.abspath(output)}


def _publish_directory(tmp: str, output: str, kind: str, overwrite: bool) -> None:
    """Swap the complete directory ``tmp`` in at ``output``: the old one (hepspark's own,
    checked again) is moved aside first and deleted only once the new one is in place."""
    fs = storage.LocalFileSystem()
    storage.mark_directory(fs, tmp, f"generate {kind}")
    if storage.check_replaceable(output, fs) and not overwrite:
        raise FileExistsError(f"{output} exists; pass --overwrite to replace it")
    if not os.path.lexists(output):
        os.replace(tmp, output)
        return
    aside = f"{tmp}.old"
    os.replace(output, aside)
    os.replace(tmp, output)
    storage.LocalFileSystem().delete(aside)


def _write_blobs(output, tmp, blobs, sizes, rows, progress) -> int:
    with Progress("generate", rows, "images", emit=progress) as bar:
        return _write_chunks(output, tmp, _advancing(blobs, sizes, bar))


def _advancing(blobs, sizes, bar: Progress) -> Iterator[bytes]:
    """The chunks, each counted on ``bar`` once it has been written (the next is asked for)."""
    for size, blob in zip(sizes, blobs):
        yield blob
        bar.advance(size)


def _write_chunks(output, tmp, blobs) -> int:
    if output.endswith(".npz"):  # one file: the chunks are joined in memory
        parts = []
        for blob in blobs:
            with np.load(io.BytesIO(blob)) as data:
                parts.append({k: data[k] for k in data.files})
        joined = {k: np.concatenate([p[k] for p in parts]) for k in ("images", "labels",
                                                                       "weights")}
        with open(tmp, "wb") as handle:
            handle.write(npz_bytes(**joined, class_names=parts[0]["class_names"]))
        return os.path.getsize(tmp)
    if output.endswith(HDF5_SUFFIXES):
        import h5py

        with h5py.File(tmp, "w") as h5:
            for blob in blobs:
                with np.load(io.BytesIO(blob)) as data:
                    _append_h5(h5, data)
        return os.path.getsize(tmp)
    os.makedirs(tmp)
    written = 0
    for index, blob in enumerate(blobs):
        with open(os.path.join(tmp, f"part-{index:05d}.npz"), "wb") as handle:
            handle.write(blob)
        written += len(blob)
    return written


def _append_h5(h5, data) -> None:
    if "images" not in h5:
        h5.attrs["class_names"] = [str(n) for n in data["class_names"]]
        for key in ("images", "labels", "weights"):
            array = data[key]
            h5.create_dataset(
                key, data=array, maxshape=(None, *array.shape[1:]),
                chunks=(min(256, max(len(array), 1)), *array.shape[1:]),
                compression="gzip", compression_opts=1,
            )
        return
    for key in ("images", "labels", "weights"):
        dataset, array = h5[key], data[key]
        dataset.resize(dataset.shape[0] + len(array), axis=0)
        dataset[-len(array):] = array


def _blobs(kind, sizes, seed, options, names, spark) -> Iterator[bytes]:
    if spark is None:
        for index, n in enumerate(sizes):
            yield _chunk_blob(kind, index, n, seed, options, names)
        return
    sc = spark.sparkContext
    jobs = list(enumerate(sizes))
    rdd = sc.parallelize(jobs, numSlices=len(jobs)).map(
        lambda job: _chunk_blob(kind, job[0], job[1], seed, options, names)
    )
    # One chunk per partition, in waves as wide as the cluster: every core busy, and the
    # driver holds one wave of compressed chunks at a time, written in order.
    wave = max(1, sc.defaultParallelism)
    for first in range(0, len(jobs), wave):
        partitions = list(range(first, min(first + wave, len(jobs))))
        yield from sc.runJob(rdd, lambda it: list(it), partitions)


# ------------------------------------------------------------------------------- reading
def resolve_image_files(pattern: str) -> list[str]:
    """Local files for a file, a glob or a directory (its ``*.npz``/``*.h5``/``*.root``
    files, sorted); clear errors when nothing usable is there."""
    path = os.path.expanduser(pattern.removeprefix("file://"))
    if os.path.isdir(path):
        files = sorted(f for f in glob.glob(os.path.join(path, "*")) if f.endswith(FILE_SUFFIXES))
        if not files:
            raise FileNotFoundError(
                f"directory {pattern!r} holds no {'/'.join(FILE_SUFFIXES)} files"
            )
    else:
        files = sorted(glob.glob(path)) if glob.has_magic(path) else [path]
        missing = [f for f in files if not os.path.isfile(f)]
        if not files or missing:
            raise FileNotFoundError(
                f"input {pattern!r} not found ({missing[0] if missing else 'no match'}); give "
                "an .npz/.h5/.root file, a glob or a directory, e.g. from 'hepspark generate "
                "jets --rows 10000 --output jets.h5'"
            )
    unknown = [f for f in files if not f.endswith(FILE_SUFFIXES)]
    if unknown:
        raise ValueError(f"{unknown[0]}: unknown file type; expected {'/'.join(FILE_SUFFIXES)}")
    return [os.path.abspath(f) for f in files]


class UnreadableFileError(ValueError):
    """An image file whose bytes cannot be read (damaged, truncated); names file and rows."""


class ImageFile:
    """One NPZ, HDF5 or ROOT file of images: its shape without reading the pixels, and
    row slices of the three arrays."""

    def __init__(self, path: str, names: ArrayNames = ArrayNames()) -> None:
        self.path = path
        self.names = names
        if path.endswith(".npz"):
            self._shapes = _npz_shapes(path)
        elif path.endswith(HDF5_SUFFIXES):
            import h5py

            try:
                with h5py.File(path, "r") as h5:
                    self._shapes = {k: h5[k].shape for k in h5.keys()
                                    if isinstance(h5[k], h5py.Dataset)}
            except OSError as exc:  # h5py's errors for damaged/truncated files
                raise UnreadableFileError(f"{path}: not a readable HDF5 file ({exc}); "
                                          "re-copy or regenerate it") from None
        else:
            self._shapes = _root_shapes(path)
        wanted = [names.images, names.labels] + ([names.weights] if names.weights else [])
        for key in wanted:
            if key not in self._shapes:
                raise ValueError(
                    f"{path}: no array named {key!r}; it holds {sorted(self._shapes)} "
                    "(choose with --images-key/--labels-key/--weights-key)"
                )
        self.has_weights = bool(names.weights)
        rows = self._shapes[names.images][0]
        image_shape = tuple(self._shapes[names.images][1:])
        if len(image_shape) == 2:
            image_shape = (*image_shape, 1)
        if len(image_shape) != 3:
            raise ValueError(f"{path}: {names.images!r} must be [N, H, W] or [N, H, W, C], "
                             f"got shape {self._shapes[names.images]}")
        for key in wanted[1:]:
            if tuple(self._shapes[key]) != (rows,):
                raise ValueError(f"{path}: {key!r} must have shape ({rows},) like the images, "
                                 f"got {self._shapes[key]}")
        self.rows = int(rows)
        self.image_shape = image_shape

    def read(self, start: int = 0, stop: int | None = None):
        """``(images float32 [n, H, W, C], labels [n] as stored, weights float32 [n] or
        None)`` for rows ``start:stop``."""
        stop = self.rows if stop is None else stop
        keys = [self.names.images, self.names.labels] + (
            [self.names.weights] if self.has_weights else [])
        try:
            if self.path.endswith(".npz"):
                with np.load(self.path, allow_pickle=False) as data:
                    arrays = [data[k][start:stop] for k in keys]
            elif self.path.endswith(HDF5_SUFFIXES):
                import h5py

                with h5py.File(self.path, "r") as h5:
                    arrays = [h5[k][start:stop] for k in keys]
            else:
                arrays = _root_read(self.path, keys, start, stop)
        except Exception as exc:  # h5py OSError, zlib/zipfile/uproot errors on bad bytes
            first = (str(exc).strip().splitlines() or [""])[0][:200]
            raise UnreadableFileError(
                f"{self.path}: rows {start}..{stop - 1} cannot be read ({type(exc).__name__}: "
                f"{first}); the file is damaged or truncated: re-copy or regenerate it"
            ) from None
        images = np.asarray(arrays[0], np.float32).reshape(-1, *self.image_shape)
        weights = np.asarray(arrays[2], np.float32) if self.has_weights else None
        return images, np.asarray(arrays[1]), weights


def _npz_shapes(path: str) -> dict[str, tuple]:
    """Array shapes of an .npz from the .npy headers, without decompressing the data."""
    shapes = {}
    try:
        with zipfile.ZipFile(path) as archive:
            for name in archive.namelist():
                if not name.endswith(".npy"):
                    continue
                with archive.open(name) as member:
                    version = np.lib.format.read_magic(member)
                    shape, _, _ = np.lib.format._read_array_header(member, version)
                shapes[name[:-4]] = shape
    except zipfile.BadZipFile as exc:
        raise ValueError(f"{path}: not a valid .npz file ({exc})") from exc
    return shapes


def _root_tree(path: str):
    try:
        import uproot
    except ImportError as exc:
        raise ValueError(f"{path}: reading ROOT files needs uproot (pip install uproot)") from exc
    with uproot.open(path) as handle:
        trees = [k for k, c in handle.classnames().items() if c == "TTree"]
    if not trees:
        raise ValueError(f"{path}: no TTree in this ROOT file")
    return uproot, trees[0].split(";")[0]


def _root_shapes(path: str) -> dict[str, tuple]:
    uproot, tree_name = _root_tree(path)
    with uproot.open(path) as handle:
        tree = handle[tree_name]
        shapes = {}
        for name, branch in tree.items():
            inner = getattr(branch.interpretation, "inner_shape", ())
            shapes[name] = (tree.num_entries, *tuple(inner))
    return shapes


def _root_read(path: str, keys: list[str], start: int, stop: int) -> list[np.ndarray]:
    uproot, tree_name = _root_tree(path)
    with uproot.open(path) as handle:
        arrays = handle[tree_name].arrays(keys, entry_start=start, entry_stop=stop, library="np")
    return [np.asarray(arrays[k]) for k in keys]
