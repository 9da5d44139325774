"""The SparkSession factory: one shared local[2] session, environment fixes applied once."""
from __future__ import annotations

import os
import sys

from hepspark.session import bigdl_conf, get_spark, spark_resources


def test_shared_session_runs_executors_on_the_venv_python(spark):
    assert get_spark() is spark  # getOrCreate: every job and test shares it
    assert spark.sparkContext.master == "local[2]"
    assert os.environ["PYSPARK_PYTHON"] == sys.executable
    executables = spark.sparkContext.parallelize([0, 1], 2).map(
        lambda _: __import__("sys").executable).collect()
    assert set(executables) == {sys.executable}
    assert spark_resources(spark) == (1, 2)


def test_bigdl_conf_names_existing_jars_and_a_real_log_file(tmp_path):
    conf = bigdl_conf(str(tmp_path))
    jars = conf["spark.jars"].split(",")
    assert len(jars) == 2 and all(os.path.isfile(j) for j in jars)
    assert any("dllib" in j for j in jars) and any("/core/" in j for j in jars)
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        assert conf[key] == f"-DlogFilename={tmp_path}/hepspark-bigdl.log"


def test_default_driver_heap_is_a_share_of_the_machines_ram():
    # local mode runs every task in the driver JVM: BigDL's 10M-row HIGGS cache needs more
    # than the old fixed 4g, so the default follows the machine (at least 4g)
    import os

    from hepspark.session import default_driver_memory

    value = default_driver_memory()
    ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    assert value.endswith("g")
    assert 4 <= int(value[:-1]) <= max(4, ram_gb * 0.4)
