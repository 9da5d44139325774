"""Every workaround BigDL 2.4.0 needs on this stack (STACK.md), in one place.

BigDL is unmaintained since Nov 2023 and targets Spark 3.1 / Python 3.7; each trap below
names the failure it prevents. Nothing here is imported unless ``--backend bigdl`` is used.
"""
from __future__ import annotations

import os
import sys
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# BigDL's own Spark settings (bigdl/share/dllib/conf/spark-bigdl.conf), which its
# init_nncontext() would apply; we create the session ourselves (hepspark.session), so they
# are passed here. Dropped from that file: spark.shuffle.blockTransferService=nio (removed
# in Spark 3) and the serializer/log options (Spark's defaults are what BigDL expects).
BIGDL_SPARK_CONF = {
    "spark.shuffle.reduceLocality.enabled": "false",
    # wait for every executor before the first iteration: BigDL sizes its per-node model
    # replicas from the executors registered when training starts
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": "3600s",
    "spark.speculation": "false",
}


def prepare_python_home() -> None:
    """Trap: in a virtualenv BigDL sets PYTHONHOME to the venv (``set_python_home``) on
    import of its context helpers; every Python worker started after that dies with
    ``No module named 'encodings'``. Setting it to the real installation first keeps BigDL
    from touching it."""
    os.environ.setdefault("PYTHONHOME", sys.base_prefix)


def bigdl_session(master: str | None) -> "SparkSession":
    """The SparkSession with BigDL's jars (hepspark.session.bigdl_conf: jars plus the
    ``/tmp/${sys:logFilename}`` log-file trap) and its engine initialised on it.

    Trap: ``init_spark_standalone()`` builds a bad launch command on this stack and
    ``init_nncontext()`` wants to create the context itself; ``init_engine()`` on the context
    we made works, locally, on standalone masters and under spark-submit.
    """
    prepare_python_home()
    from hepspark.session import get_spark

    spark = get_spark("hepspark-train-higgs", master=master, bigdl=True, conf=BIGDL_SPARK_CONF)
    if not _has_bigdl_classes(spark):
        _add_jars_to_driver(spark)
    require_jvm_classes(spark)
    _set_total_cores(spark)
    from bigdl.dllib.utils.common import init_engine

    init_engine()
    return spark


def _has_bigdl_classes(spark: "SparkSession") -> bool:
    jvm = spark.sparkContext._jvm
    try:
        jvm.java.lang.Class.forName(
            "com.intel.analytics.bigdl.dllib.utils.Engine", True,
            jvm.Thread.currentThread().getContextClassLoader(),
        )
        return True
    except Exception:
        return False


def _add_jars_to_driver(spark: "SparkSession") -> None:
    """Trap: under spark-submit the driver JVM is already running when Python asks for
    ``spark.jars``: the jars reach the executors (SparkContext ships them) but not the
    driver's classpath. spark-submit's driver class loader is Spark's
    MutableURLClassLoader, whose public ``addURL`` takes them; py4j resolves classes
    through that same loader."""
    from hepspark.session import bigdl_conf

    jvm = spark.sparkContext._jvm
    loader = jvm.Thread.currentThread().getContextClassLoader()
    if "MutableURLClassLoader" not in loader.getClass().getName():
        return
    for jar in bigdl_conf()["spark.jars"].split(","):
        loader.addURL(jvm.java.io.File(jar).toURI().toURL())


def require_jvm_classes(spark: "SparkSession") -> None:
    """Trap: under spark-submit the driver JVM is already running when Python asks for
    ``spark.jars``; the jars then reach the executors but not the driver's classpath, and
    BigDL fails with a py4j "... does not exist in the JVM". Say what to pass instead."""
    if not _has_bigdl_classes(spark):
        raise RuntimeError(
            "BigDL's classes are not on the driver's classpath. Under spark-submit pass them "
            f"on the command line: spark-submit {' '.join(bigdl_submit_args())} ... "
            "(and export PYSPARK_PYTHON=.venv/bin/python)"
        )


def _set_total_cores(spark: "SparkSession", timeout_s: float = 60) -> None:
    """Trap: on a standalone master BigDL's Engine.init fails with "Can't find total core
    number. Do you submit with --total-executor-cores" unless ``spark.cores.max`` is set.
    Without that flag, wait for the executors to register (the count stays the same for
    3 s) and set it to the cores they brought, in the live SparkConf BigDL reads."""
    sc = spark.sparkContext
    conf = sc._jsc.sc().conf()
    if not sc.master.startswith("spark://") or conf.contains("spark.cores.max"):
        return
    import time

    from hepspark.session import spark_resources

    deadline, last, stable_since = time.monotonic() + timeout_s, None, time.monotonic()
    while time.monotonic() < deadline:
        current = sc._jsc.sc().getExecutorMemoryStatus().size() - 1
        if current != last:
            last, stable_since = current, time.monotonic()
        elif current > 0 and time.monotonic() - stable_since > 3:
            break
        time.sleep(0.5)
    if not last:
        raise RuntimeError(
            f"no executor registered with {sc.master} within {timeout_s:.0f} s: is the "
            "cluster up with free cores? ('hepspark cluster status')"
        )
    executors, cores = spark_resources(spark)
    conf.set("spark.cores.max", str(executors * cores))


def bigdl_submit_args() -> list[str]:
    """spark-submit flags that put BigDL on the driver and executor classpaths."""
    from hepspark.session import bigdl_conf

    conf = bigdl_conf()
    return ["--jars", conf["spark.jars"], "--driver-class-path",
            conf["spark.jars"].replace(",", ":"),
            "--conf", f"spark.driver.extraJavaOptions={conf['spark.driver.extraJavaOptions']}",
            "--conf",
            f"spark.executor.extraJavaOptions={conf['spark.executor.extraJavaOptions']}"]


def check_batch_size(batch_size: int, total_cores: int) -> None:
    """Trap: BigDL splits every batch evenly over all executor cores and fails deep in the
    JVM otherwise; say which batch sizes work instead."""
    if batch_size % total_cores:
        lower = batch_size // total_cores * total_cores
        options = [b for b in (lower, lower + total_cores) if b > 0]
        raise ValueError(
            f"BigDL needs the batch size to be a multiple of the {total_cores} executor "
            f"cores; {batch_size} is not: use --batch-size "
            + " or ".join(str(b) for b in options)
        )


if __name__ == "__main__":  # python -m hepspark.backends.bigdl_compat: the spark-submit flags
    print(" ".join(bigdl_submit_args()))
