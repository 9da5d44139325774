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
