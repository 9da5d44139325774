"""Workarounds applied inside Spark's Python workers, once per worker process.

pyspark 3.5's ``worker.py`` calls ``importlib.invalidate_caches()`` before every task, and
on CPython 3.10 and 3.11 ``zipimport.zipimporter.invalidate_caches`` re-reads the whole
directory of its archive, in Python, every time (cpython gh-103200; lazy from 3.12; Spark
calls it only when needed from SPARK-54744, Spark 4.2). With ``pyspark.zip`` and py4j's zip
on every worker's path that is ~50 ms of CPU per task, measured here: 2.3 s of the 11M-event
conversion's 45 s. :func:`skip_unchanged_zip_rereads` keeps the call's purpose (an archive
that changed is re-read) and drops the rest. Remove it with Python >= 3.12 or Spark >= 4.2.

Applied by ``hepspark/__init__.py`` when it is imported in a Spark Python worker (workers are
reused across tasks, so every task after a worker's first one gains).
"""
from __future__ import annotations

import os
import sys


def in_spark_worker() -> bool:
    """True inside a Spark Python worker (its daemon imports ``pyspark.worker``)."""
    return "pyspark.worker" in sys.modules


def _stamp(path: str) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def skip_unchanged_zip_rereads() -> None:
    """Make ``zipimporter.invalidate_caches`` re-read an archive only when its mtime or size
    changed since that importer last read it. Idempotent; a no-op from Python 3.12."""
    import zipimport

    if sys.version_info >= (3, 12):
        return
    reread = zipimport.zipimporter.invalidate_caches
    if getattr(reread, "hepspark_patched", False):
        return

    def invalidate_caches(self) -> None:
        stamp = _stamp(self.archive)
        if stamp is not None and getattr(self, "_hepspark_stamp", None) == stamp:
            return
        reread(self)
        self._hepspark_stamp = stamp

    invalidate_caches.hepspark_patched = True
    zipimport.zipimporter.invalidate_caches = invalidate_caches
