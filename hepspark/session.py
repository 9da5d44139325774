"""The one SparkSession factory used by every job, CLI command and test.

Under ``spark-submit`` the master and resources come from the submit command line and are
left alone; otherwise ``local[*]`` (or the given ``master``) is used. Every environment
workaround the stack needs (STACK.md) is applied here, once.
"""
from __future__ import annotations

import os
import sys
import tempfile
from collections.abc import Mapping
from typing import TYPE_CHECKING

from hepspark import logs, stopping

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

DEFAULT_MASTER = "local[*]"
# The driver heap when neither $HEPSPARK_DRIVER_MEMORY (EngineSettings.driver_memory) nor
# the machine's size says otherwise.
DEFAULT_DRIVER_MEMORY = "4g"
# Share of the machine's RAM the driver heap may grow to by default. In local mode the
# tasks run in the driver JVM, so its heap is the whole cluster's: BigDL caches the full
# 10M-row HIGGS split in about 2.9 GB of storage memory (hepspark.backends.bigdl_memory),
# which 4g does not give. The JVM takes heap lazily, so a large limit costs a small job
# nothing.
DRIVER_MEMORY_SHARE = 0.4
MAX_DEFAULT_DRIVER_MEMORY_GB = 64


def default_driver_memory() -> str:
    """The driver heap used when ``$HEPSPARK_DRIVER_MEMORY`` is unset: 40% of the
    machine's RAM (at least 4g, at most 64g), e.g. ``9g`` on a 24 GiB laptop."""
    try:
        ram_gb = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    except (AttributeError, ValueError, OSError):
        return DEFAULT_DRIVER_MEMORY
    return f"{int(min(max(ram_gb * DRIVER_MEMORY_SHARE, 4), MAX_DEFAULT_DRIVER_MEMORY_GB))}g"


def prepare_environment() -> None:
    """Environment every Spark driver on this stack needs, set before the JVM starts.

    - Executors must run the driver's interpreter (the venv's), not the system python.
    - The hostname resolves to a loopback address on our machines; Spark warns and can
      bind oddly unless SPARK_LOCAL_IP is set.
    """
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    if not os.environ.get("SPARK_LOCAL_IP") and _hostname_is_loopback():
        os.environ["SPARK_LOCAL_IP"] = "127.0.0.1"


def _hostname_is_loopback() -> bool:
    import socket

    try:
        return socket.gethostbyname(socket.gethostname()).startswith("127.")
    except OSError:
        return True


def running_under_spark_submit() -> bool:
    """True when this process was launched by spark-submit, which then owns the master and
    resources: its PythonRunner hands the driver a JVM gateway through this variable."""
    return bool(os.environ.get("PYSPARK_GATEWAY_PORT"))


def get_spark(
    app_name: str = "hepspark",
    master: str | None = None,
    conf: Mapping[str, str] | None = None,
    log_level: str | None = None,
    bigdl: bool = False,
    driver_memory: str | None = None,
) -> "SparkSession":
    """Return the active SparkSession, creating it if needed.

    ``master=None`` keeps whatever spark-submit configured, or uses ``local[*]`` when run
    directly. Extra ``conf`` entries are applied only when the session is created here;
    ``bigdl=True`` adds :func:`bigdl_conf` (jars and the log-file workaround).
    ``driver_memory``: the driver heap, ``EngineSettings.driver_memory`` as the caller read
    it (``$HEPSPARK_DRIVER_MEMORY``); None: :func:`default_driver_memory`.
    ``log_level=None`` follows :func:`hepspark.logs.jvm_log_level` (WARN unless
    ``--verbose``); below INFO the driver uses hepspark's log4j2 configuration from its
    first line on (:mod:`hepspark.logs`), so Spark's start-up INFO lines never print.

    >>> spark = get_spark("demo", master="local[2]")
    >>> spark.range(3).count()
    3
    """
    prepare_environment()
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name)
    if master is not None:
        builder = builder.master(master)
    elif not running_under_spark_submit():
        builder = builder.master(DEFAULT_MASTER)
    defaults = {
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.showConsoleProgress": "true" if sys.stderr.isatty() else "false",
        # Our Parquet files are read by pyarrow/Petastorm, which expects plain timestamps.
        "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
        "spark.driver.memory": driver_memory or default_driver_memory(),
        # Petastorm 0.13.1 runs pyarrow.localfs lookups in executors, each printing a
        # FutureWarning (see hepspark.data.petastorm_compat); silence just that module.
        "spark.executorEnv.PYTHONWARNINGS": "ignore::FutureWarning:petastorm.fs_utils",
    }
    extra, conf = (bigdl_conf() if bigdl else {}), dict(conf or {})
    settings = {**defaults, **extra, **conf}
    log_level = log_level or logs.jvm_log_level()
    quiet = logs.quiet_java_option() if logs.is_quiet(log_level) else None
    if quiet:
        # the Python workers' TensorFlow (BigDL's, Petastorm's imports) on every executor
        settings.setdefault("spark.executorEnv.TF_CPP_MIN_LOG_LEVEL", "2")
    # Executor JVMs get our log4j2 file only where it exists: on this machine (local
    # executors share the driver's JVM; `hepspark cluster up` workers run here too).
    local_executors = _executors_on_this_machine(master)
    for key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
        # BigDL's -DlogFilename, the caller's options and ours, none replacing another
        ours = quiet if (key.startswith("spark.driver") or local_executors) and \
            "log4j2.configurationFile" not in conf.get(key, "") else None
        merged = logs.merge_java_options(extra.get(key), conf.get(key), ours)
        if merged:
            settings[key] = merged
    if quiet and running_under_spark_submit():
        quiet_submitted_driver()
    for key, value in settings.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel(log_level)
    stopping.keep_replaced_handlers()  # the SparkContext replaced Ctrl-C's handler
    return spark


def _executors_on_this_machine(master: str | None) -> bool:
    """Whether the session's executors run on this machine (local mode, or a standalone
    master on the loopback address); under spark-submit the master is the submitted one."""
    if master is None:
        if not running_under_spark_submit():
            return True  # DEFAULT_MASTER
        from pyspark import SparkConf, SparkContext

        SparkContext._ensure_initialized()
        master = SparkConf().get("spark.master", "")
    return master.startswith("local") or \
        any(f"//{host}:" in master for host in ("127.0.0.1", "localhost"))


def quiet_submitted_driver() -> None:
    """Under spark-submit the driver JVM runs already: reconfigure its log4j2 through the
    gateway before the SparkContext starts (once; a running context is left as it is).
    The CLI calls it first thing, so even a job that never starts Spark (the keras engine)
    ends without the driver's INFO shutdown lines."""
    from pyspark import SparkContext

    if SparkContext._active_spark_context is None:
        SparkContext._ensure_initialized()
        # a configuration the user gave (--driver-java-options -Dlog4j2...) stays theirs
        if not SparkContext._jvm.java.lang.System.getProperty("log4j2.configurationFile"):
            logs.quiet_running_driver(SparkContext._jvm)


def bigdl_conf(log_dir: str | None = None) -> dict[str, str]:
    """Spark settings the BigDL backend needs, applied only when that backend is chosen.

    - The dllib and core jars of the installed bigdl packages go on the classpath.
    - BigDL 2.4.0's log4j2 config writes a literal, ever-growing ``/tmp/${sys:logFilename}``
      file (STACK.md): give it a real file name on the driver and the executors.
    BigDL's own tuning settings are applied by ``init_nncontext()`` itself.
    """
    import glob

    import bigdl

    share = os.path.join(os.path.dirname(bigdl.__file__), "share")
    jars = sorted(glob.glob(os.path.join(share, "dllib", "lib", "*jar-with-dependencies.jar")))
    jars += sorted(glob.glob(os.path.join(share, "core", "lib", "all-*.jar")))
    if len(jars) != 2:
        raise FileNotFoundError(
            f"BigDL jars not found under {share} (found {jars}); re-run 'make install'"
        )
    log_file = os.path.join(log_dir or tempfile.gettempdir(), "hepspark-bigdl.log")
    option = f"-DlogFilename={log_file}"
    return {
        "spark.jars": ",".join(jars),
        "spark.driver.extraJavaOptions": option,
        "spark.executor.extraJavaOptions": option,
    }


def spark_resources(spark: "SparkSession") -> tuple[int, int]:
    """(num_executors, cores_per_executor) of a session, for logging next to timings.

    local[N] counts as one executor with N cores.
    """
    sc = spark.sparkContext
    master = sc.master
    if master.startswith("local"):
        return 1, sc.defaultParallelism
    status = sc._jsc.sc().getExecutorMemoryStatus()  # includes the driver
    num_executors = max(status.size() - 1, 1)
    cores = int(sc.getConf().get("spark.executor.cores", "0")) or max(
        sc.defaultParallelism // num_executors, 1
    )
    return num_executors, cores


def executor_python(spark: "SparkSession") -> str:
    """The interpreter the executors' Python workers run (one one-task job): with
    ``--archives env.tar.gz#env`` and ``PYSPARK_PYTHON=./env/bin/python``, a path inside the
    unpacked archive. Logged with every run, so where the code ran is on record."""
    import sys

    return spark.sparkContext.parallelize([0], 1).map(lambda _: sys.executable).first()
