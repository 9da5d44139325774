"""Quiet logs by default, INFO with --verbose, warnings always: the real commands, run in
subprocesses as a user runs them (hepspark.logs)."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest

from hepspark.logs import merge_java_options

VENV_BIN = os.path.dirname(sys.executable)
JOBS = os.path.join(os.path.dirname(__file__), "..", "spark_jobs")
SPARK_INFO = re.compile(r"^\d\d/\d\d/\d\d \d\d:\d\d:\d\d INFO ", re.M)


def run(args, cwd, timeout=600):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable,
           "PYSPARK_DRIVER_PYTHON": sys.executable, "MLFLOW_TRACKING_URI": ""}
    for name in ("TF_CPP_MIN_LOG_LEVEL", "MLFLOW_LOGGING_LEVEL"):  # the commands choose
        env.pop(name, None)
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> str:
    path = str(tmp_path_factory.mktemp("logs") / "h.csv.gz")
    result = run([sys.executable, "-m", "hepspark.cli", "generate", "higgs", "--rows", "2000",
                  "--output", path], cwd=os.path.dirname(path))
    assert result.returncode == 0, result.stderr
    return path


@pytest.mark.parametrize("verbose", [False, True])
def test_spark_submit_job_is_quiet_unless_verbose(small_csv, tmp_path, verbose):
    """`spark-submit spark_jobs/convert_higgs.py`: our lines first, Spark's INFO lines only
    with --verbose."""
    cmd = [os.path.join(VENV_BIN, "spark-submit"), "--master", "local[1]",
           os.path.join(JOBS, "convert_higgs.py"), "--input", small_csv,
           "--output", str(tmp_path / "out")] + (["--verbose"] if verbose else [])
    result = run(cmd, cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    infos = SPARK_INFO.findall(result.stderr)
    if verbose:
        assert len(infos) > 20 and "INFO SparkContext: Running Spark version" in result.stderr
    else:
        assert infos == [], result.stderr[-3000:]
        assert "Setting default log level" not in result.stderr
    assert "[convert] done" in result.stdout


@pytest.mark.parametrize("verbose", [False, True])
def test_tensorflow_info_lines_only_with_verbose(tmp_path, verbose):
    """TF 2.21 prints "oneDNN custom operations are on" at import whatever
    TF_CPP_MIN_LOG_LEVEL says; our commands drop it unless --verbose."""
    result = run([sys.executable, "-m", "hepspark.cli", "models", "list"]
                 + (["--verbose"] if verbose else []), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert ("oneDNN custom operations are on" in result.stderr) is verbose, result.stderr


WARN_SCRIPT = """
import logging, sys
from hepspark.logs import configure_logging
from hepspark.session import get_spark
configure_logging(verbose=sys.argv[1] == "verbose")
spark = get_spark("logs-test", master="local[1]" if sys.argv[2] == "direct" else None,
                  conf={"spark.driver.extraJavaOptions": "-Dhepspark.test.option=1"})
jvm = spark.sparkContext._jvm
logger = jvm.org.apache.logging.log4j.LogManager.getLogger("org.apache.spark.HepsparkTest")
logger.info("hepspark-test-info-line")
logger.warn("hepspark-test-warn-line")
logger.error("hepspark-test-error-line")
print("options", spark.conf.get("spark.driver.extraJavaOptions"))
print("property", jvm.java.lang.System.getProperty("hepspark.test.option"))
spark.stop()
"""


@pytest.mark.parametrize("launch", ["direct", "spark-submit"])
@pytest.mark.parametrize("verbose", [False, True])
def test_spark_warnings_and_errors_still_show(tmp_path, launch, verbose):
    """A WARN and an ERROR logged through the driver JVM's log4j2 print in every mode; an
    INFO only when verbose. The caller's driver options survive ours (merged, not replaced)."""
    script = tmp_path / "warn.py"
    script.write_text(WARN_SCRIPT)
    mode = "verbose" if verbose else "quiet"
    cmd = ([sys.executable, str(script)] if launch == "direct" else
           [os.path.join(VENV_BIN, "spark-submit"), "--master", "local[1]", str(script)])
    result = run([*cmd, mode, launch], cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    assert "WARN HepsparkTest: hepspark-test-warn-line" in result.stderr
    assert "ERROR HepsparkTest: hepspark-test-error-line" in result.stderr
    assert ("hepspark-test-info-line" in result.stderr) is verbose
    if launch == "direct":
        assert "property 1" in result.stdout  # the caller's option reached the JVM
        if not verbose:
            assert "SparkContext" not in result.stderr  # no start-up INFO lines
            assert "-Dlog4j2.configurationFile=" in result.stdout


def test_java_options_are_merged_not_replaced():
    assert merge_java_options("-DlogFilename=/tmp/b.log", None, "-Dx=1 -DlogFilename=/tmp/b.log",
                              "-Dlog4j2.configurationFile=q") == (
        "-DlogFilename=/tmp/b.log -Dx=1 -Dlog4j2.configurationFile=q")
    assert merge_java_options(None, "") == ""
