"""hepspark: distributed deep learning on Apache Spark for physics datasets."""

__version__ = "0.1.0"


def _patch_spark_worker() -> None:
    from hepspark import worker_compat

    if worker_compat.in_spark_worker():
        worker_compat.skip_unchanged_zip_rereads()


_patch_spark_worker()
