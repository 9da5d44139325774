"""The per-task zip re-read workaround: applied in Spark's Python workers, and an archive
that changed is still re-read (the purpose of ``importlib.invalidate_caches``)."""
from __future__ import annotations

import importlib
import os
import sys
import zipfile
import zipimport

import pytest

from hepspark import worker_compat

pytestmark = pytest.mark.skipif(sys.version_info >= (3, 12), reason="needed before 3.12 only")


def test_spark_workers_get_the_patch_and_the_driver_does_not(spark):
    def _worker_state(_):  # nested: shipped by value, not by this test module's name
        import sys
        import zipimport

        import hepspark.data.higgs_rows  # noqa: F401  (any hepspark task imports the package)

        return (getattr(zipimport.zipimporter.invalidate_caches, "hepspark_patched", False),
                any(".zip" in path for path in sys.path))

    states = spark.sparkContext.parallelize(range(2), 2).map(_worker_state).collect()
    assert states == [(True, True), (True, True)]  # patched, and zips were on the path
    assert not worker_compat.in_spark_worker()


def test_only_a_changed_archive_is_reread(tmp_path, monkeypatch):
    archive = tmp_path / "lib.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("alpha.py", "X = 1\n")
    reads = []
    original = zipimport._read_directory
    monkeypatch.setattr(zipimport, "_read_directory",
                        lambda path: reads.append(path) or original(path))
    monkeypatch.setattr(zipimport.zipimporter, "invalidate_caches",
                        zipimport.zipimporter.invalidate_caches)  # restored after the test
    worker_compat.skip_unchanged_zip_rereads()
    worker_compat.skip_unchanged_zip_rereads()  # idempotent: one wrapper, not two
    importer = zipimport.zipimporter(str(archive))
    importer.invalidate_caches()
    reads.clear()
    importer.invalidate_caches()
    importer.invalidate_caches()
    assert reads == []  # unchanged: nothing re-read
    with zipfile.ZipFile(archive, "a") as z:
        z.writestr("beta.py", "Y = 2\n")
    os.utime(archive, ns=(0, 10**18))  # a new mtime even on a coarse clock
    importer.invalidate_caches()
    assert reads == [str(archive)]
    assert importer.find_spec("beta") is not None
    importlib.invalidate_caches()
