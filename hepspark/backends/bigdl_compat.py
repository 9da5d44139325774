"""Every workaround BigDL 2.4.0 needs on this stack (STACK.md), in one place.

BigDL is unmaintained since Nov 2023 and targets Spark 3.1 / Python 3.7; each trap below
names the failure it prevents. Nothing here is imported unless ``--backend bigdl`` is used.
"""
from __future__ import annotations

import builtins
import os
import sys
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# BigDL's own Spark settings (bigdl/share/dllib/conf/spark-bigdl.conf), which its
# init_nncontext() would apply; we create the session ourselves (hepspark.session), so they
# are passed here. Dropped from that file: spark.shuffle.blockTransferService=nio (removed
# in Spark 3) and the serializer/log options (Spark's defaults are what BigDL expects).
# How long the first job waits for every executor (BigDL's file said 3600 s: a missing
# executor held the run for an hour); ``--executor-wait-s`` sets it.
DEFAULT_EXECUTOR_WAIT_S = 300.0
BIGDL_SPARK_CONF = {
    "spark.shuffle.reduceLocality.enabled": "false",
    # wait for every executor before the first iteration: BigDL sizes its per-node model
    # replicas from the executors registered when training starts
    "spark.scheduler.minRegisteredResourcesRatio": "1.0",
    "spark.scheduler.maxRegisteredResourcesWaitingTime": f"{DEFAULT_EXECUTOR_WAIT_S:g}s",
    "spark.speculation": "false",
}


def bigdl_spark_conf(executor_wait_s: float = DEFAULT_EXECUTOR_WAIT_S) -> dict[str, str]:
    """BigDL's Spark settings with the executor wait bounded by ``executor_wait_s``."""
    return {**BIGDL_SPARK_CONF,
            "spark.scheduler.maxRegisteredResourcesWaitingTime": f"{executor_wait_s:g}s"}


def prepare_python_home() -> None:
    """Trap: in a virtualenv BigDL sets PYTHONHOME to the venv (``set_python_home``) on
    import of its context helpers; every Python worker started after that dies with
    ``No module named 'encodings'``. Setting it to the real installation first keeps BigDL
    from touching it."""
    os.environ.setdefault("PYTHONHOME", sys.base_prefix)


def bigdl_session(
    master: str | None, executor_wait_s: float = DEFAULT_EXECUTOR_WAIT_S,
    driver_memory: str | None = None,
) -> "SparkSession":
    """The SparkSession with BigDL's jars (hepspark.session.bigdl_conf: jars plus the
    ``/tmp/${sys:logFilename}`` log-file trap) and its engine initialised on it.

    ``executor_wait_s`` bounds both waits for executors: Spark's before the first job and,
    on a standalone master without ``spark.cores.max``, ours for them to register.
    ``driver_memory``: ``EngineSettings.driver_memory`` (None: the default share of RAM).

    Trap: ``init_spark_standalone()`` builds a bad launch command on this stack and
    ``init_nncontext()`` wants to create the context itself; ``init_engine()`` on the context
    we made works, locally, on standalone masters and under spark-submit.
    """
    prepare_python_home()
    from hepspark.logs import is_verbose
    from hepspark.session import get_spark

    spark = get_spark("hepspark-train-higgs", master=master, bigdl=True,
                      conf=bigdl_spark_conf(executor_wait_s), driver_memory=driver_memory)
    if not _has_bigdl_classes(spark):
        _add_jars_to_driver(spark)
    require_jvm_classes(spark)
    _set_total_cores(spark, timeout_s=executor_wait_s)
    from bigdl.dllib.utils.common import init_engine

    init_engine()
    quiet_creating_lines(verbose=is_verbose())
    return spark


# ------------------------------------------------------------------- Python chatter
# Trap (bigdl-dllib 2.4.0): every Python object backed by a JVM one (layer, model,
# criterion, optimizer method, trigger) prints "creating: createZooKerasSequential" and the
# like on stdout: ``jvm_class_constructor`` of ``bigdl.dllib.utils.common.JavaValue`` and of
# its copies in the modules below calls the builtin ``print`` (no logger, no switch).
# A module-level ``print`` in each of those modules shadows the builtin for their code only
# and drops just those lines; ``--verbose`` keeps them. ``bigdl.dllib.nn.keras.layers.layer``
# prints them too, but importing it starts a SparkContext of its own and hepspark never
# uses it (the Keras-1 API), so it is left alone. Remove this if BigDL ever logs them.
CHATTY_BIGDL_MODULES = ("bigdl.dllib.utils.common", "bigdl.dllib.keras.base",
                        "bigdl.dllib.utils.triggers")
CREATING_LINE = "creating: "


def _print_without_creating_lines(*args: Any, **kwargs: Any) -> None:
    if args and isinstance(args[0], str) and args[0].startswith(CREATING_LINE):
        return
    builtins.print(*args, **kwargs)


def quiet_creating_lines(verbose: bool = False) -> None:
    """Drop BigDL's "creating: ..." lines from stdout (``verbose``: let them through)."""
    import importlib

    for name in CHATTY_BIGDL_MODULES:
        module = importlib.import_module(name)
        if verbose:
            if vars(module).get("print") is _print_without_creating_lines:
                del module.print
        else:
            module.print = _print_without_creating_lines


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
        from hepspark.cluster import ClusterError

        raise ClusterError(
            f"no executor registered with {sc.master} within {timeout_s:.0f} s: is the "
            "cluster up with free cores? ('hepspark cluster status'; --executor-wait-s "
            "sets the wait)"
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


def optimize(optimizer: Any) -> None:
    """Run one ``optimize()`` of a BigDL optimizer; the trained weights are copied into the
    driver's model object in place.

    Trap: the Python ``Optimizer.optimize()`` wraps the JVM's returned model with
    ``Layer.of``, which for Keras-style models imports ``bigdl.dllib.keras.layers.topology``
    -- a module the 2.4.0 wheel does not ship (``No module named ...topology``), raised
    *after* training finished. We call the JVM method directly: nothing to wrap, nothing
    to catch, for any model type.

    With :func:`keep_optimizer_state`, every call caches the executors' optimizer state
    anew (``previousOptim``) and never releases the previous copy; we do, once the new one
    exists."""
    previous = optimizer.value.previousOptim()
    optimizer.value.optimize()
    if previous is not None:
        previous.unpersist(False)


# ------------------------------------------------------------------- optimizer state
# Trap (optimizer state, verified with Adam's step counter ``evalCounter``): a
# DistriOptimizer's OptimMethod state -- Adam's moments and step count, Adagrad's sums --
# lives on the executors, one copy per partition, each holding the slice of the parameters
# that partition updates (AllReduceParameter). The driver's OptimMethod only keeps epoch and
# iteration counters, so (a) every optimize() call restarts the optimizer from zero moments
# unless ``reserveOptim(true)`` is set, and (b) ``OptimMethod.save`` on the driver writes
# no moments. With ``reserveOptim(true)`` the executors' methods are kept between calls
# (``previousOptim``, an RDD of Map[model name -> OptimMethod]); we read them from there for
# checkpoints and put them back there on resume.


# Checkpoints keep that state as plain arrays (``optimizer_state.npz``), never as a
# Java-serialized OptimMethod: ``OptimMethod.load`` is an ObjectInputStream over a file that
# may come from a shared volume, i.e. code execution for whoever can write there (issue #14).
OPTIM_TENSOR, OPTIM_COUNTER, OPTIM_CLASS = "tensor.", "counter.", "optim_method"


def optim_state_arrays(method: Any) -> dict[str, Any]:
    """An OptimMethod's state as numpy arrays: its per-parameter tensors (``tensor.<key>``),
    its integer counters (``counter.<key>``: epoch, neval, evalCounter, ...) and its JVM
    class (``optim_method``). Float entries (``Loss``, ``score``) are the last iteration's
    reports, rewritten by the next one, and are not kept."""
    import numpy as np
    from bigdl.dllib.utils.common import callBigDlFunc

    arrays: dict[str, Any] = {OPTIM_CLASS: np.array(str(method.getClass().getName()))}
    for key, value in _state_entries(method).items():
        if _is_tensor(value):
            jtensor = callBigDlFunc("float", "toJTensor", value)  # pickled across, not per element
            arrays[OPTIM_TENSOR + key] = np.asarray(jtensor.to_ndarray(), dtype=np.float32)
        elif isinstance(value, int) and not isinstance(value, bool):
            arrays[OPTIM_COUNTER + key] = np.asarray(value, dtype=np.int64)
    return arrays


def load_optim_arrays(path: str, optim_class: str, n_parameters: int) -> dict[str, Any]:
    """Read and check an ``optim_state_arrays`` file: plain numeric arrays only
    (``allow_pickle=False``), written for ``optim_class``, tensors of ``n_parameters``
    values. Anything else is refused with a ValueError before BigDL sees it."""
    import zipfile

    import numpy as np

    def refuse(why: str) -> ValueError:
        return ValueError(f"refusing the BigDL optimizer state {path}: {why}. Resume only from "
                          "checkpoints this hepspark wrote, or start without --resume")

    try:
        with np.load(path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in data.files}
    except FileNotFoundError:
        raise
    except (ValueError, OSError, EOFError, zipfile.BadZipFile) as exc:
        raise refuse(f"not a plain-array .npz ({type(exc).__name__}: {exc})") from None
    found = str(arrays.pop(OPTIM_CLASS, ""))
    if found != optim_class:
        raise refuse(f"written for {found or 'no optimizer'}, this run uses {optim_class}")
    for name, value in arrays.items():
        if name.startswith(OPTIM_TENSOR) and value.dtype.kind == "f" and (
                value.size == n_parameters):
            continue
        if name.startswith(OPTIM_COUNTER) and value.dtype.kind in "iu" and value.ndim == 0:
            continue
        raise refuse(f"unexpected entry {name!r} ({value.dtype}, shape {value.shape}); "
                     f"expected float tensors of {n_parameters} values and integer counters")
    return arrays


def set_optim_state(method: Any, arrays: dict[str, Any], tensors: bool = True) -> Any:
    """Put ``load_optim_arrays`` state into a (fresh) JVM OptimMethod, in place: the
    counters always, the per-parameter tensors unless ``tensors=False`` (the driver's copy,
    which keeps counters only: the executors hold the rest). Returns ``method``."""
    import numpy as np
    from bigdl.dllib.utils.common import JTensor, callBigDlFunc

    state = method.state()
    for name, value in arrays.items():
        if name.startswith(OPTIM_COUNTER):
            state.update(name[len(OPTIM_COUNTER):], int(value))  # a java Integer, as BigDL's
        elif tensors and name.startswith(OPTIM_TENSOR):
            jtensor = JTensor.from_ndarray(np.ascontiguousarray(value, dtype=np.float32))
            state.update(name[len(OPTIM_TENSOR):], callBigDlFunc("float", "toTensor", jtensor))
    return method


def keep_optimizer_state(optimizer: Any) -> None:
    optimizer.value.reserveOptim(True)


def _slices(size: int, parts: int) -> list[tuple[int, int]]:
    """(offset, length) of each partition's parameter slice, as AllReduceParameter cuts."""
    task, extra = divmod(size, parts)
    return [(p * task + min(p, extra), task + (1 if p < extra else 0)) for p in range(parts)]


def _state_entries(method: Any) -> dict[str, Any]:
    state = method.state()
    keys = state.keySet().iterator()
    out = {}
    while keys.hasNext():
        key = keys.next()
        out[str(key)] = state.get(key).get()
    return out


def _is_tensor(value: Any) -> bool:
    return hasattr(value, "nElement") and hasattr(value, "narrow")


def executor_optim_state(optimizer: Any, n_parameters: int) -> Any:
    """One OptimMethod holding the optimizer state of all partitions, merged into
    full-length tensors (a JVM object; save it with :func:`optim_state_arrays`)."""
    maps = optimizer.value.previousOptim().collect()
    methods = [m.values().iterator().next() for m in maps]
    merged = methods[0].clone()
    if len(methods) == 1:
        return merged
    slices = _slices(n_parameters, len(methods))
    for key, first in _state_entries(methods[0]).items():
        if not (_is_tensor(first) and first.nElement() == slices[0][1]):
            continue  # counters (evalCounter, epoch, ...) are the same on every partition
        full = first.clone().resize(n_parameters)
        for (offset, length), method in zip(slices, methods):
            full.narrow(1, offset + 1, length).copy(method.state().get(key).get())
        merged.state().update(key, full)
    return merged


def restore_executor_optim_state(
    spark: "SparkSession", optimizer: Any, model_name: str, merged: Any, n_parameters: int,
    partitions: int,
) -> None:
    """Hand the executors ``merged`` (see :func:`executor_optim_state`) cut into the slices
    their partitions update: the next optimize() continues with those moments. Call it
    after ``optimizer.value.prepareInput()``."""
    jvm = spark.sparkContext._jvm
    slices = _slices(n_parameters, partitions)
    entries = _state_entries(merged)
    per_partition = jvm.java.util.ArrayList()
    for offset, length in slices:
        method = merged.clone()
        for key, value in entries.items():
            if _is_tensor(value) and value.nElement() == n_parameters:
                method.state().update(key, value.narrow(1, offset + 1, length).clone())
        map1 = getattr(jvm.scala.collection.immutable, "Map$Map1")(model_name, method)
        per_partition.add(map1)
    # BigDL re-zips this RDD with its model replicas in every job and its updates carry on
    # in the objects it hands back, so it must be cached on the executor of each replica:
    # uncached, or cached elsewhere (a remote block is a copy), every iteration would start
    # again from the checkpoint's moments (verified on a 2-worker cluster). Zipping with the
    # cached training data, from which BigDL makes the replicas, puts partition i there.
    # Needs the training data cached first (``prepareInput``).
    data = optimizer.value.dataset().originRDD().toJavaRDD()
    restored = spark.sparkContext._jsc.parallelize(per_partition, partitions)
    rdd = data.zip(restored).values().rdd().cache()
    rdd.count()
    keep_optimizer_state(optimizer)
    getattr(optimizer.value, "previousOptim_$eq")(rdd)

if __name__ == "__main__":  # python -m hepspark.backends.bigdl_compat: the spark-submit flags
    print(" ".join(bigdl_submit_args()))


# ------------------------------------------------------------------- training data in the JVM
# Rows become BigDL Samples in the JVM, never in Python (issue #17): turning each row into
# a Python ``Sample`` (a JTensor per feature and label), pickling it and unpickling it in the
# JVM ran at 4-8k rows/s on 2 cores and kept a pickled copy cached next to BigDL's own.
# BigDL 2.4.0 builds Samples from a DataFrame only inside ``NNEstimator``: its private
# ``getDataSet(df, batchSize)`` makes the cached FeatureSet of MiniBatches (feature column
# through the estimator's preprocessing, DRAM or DISK_AND_DRAM cache) that its ``fit`` then
# trains with a new optimizer per call. We take that FeatureSet (by reflection; the method is
# private) and train it with our own DistriOptimizer, which keeps its state across the
# one-epoch ``optimize()`` calls (``reserveOptim``). Checked against the 2.4.0 jar only.
def dataframe_minibatches(frame: Any, n_features: int, batch_size: int, cache_level: str,
                          slices: int) -> Any:
    """The JVM ``DistributedDataSet[MiniBatch]`` of a DataFrame with a ``features``
    array<float> column of ``n_features`` values and a float ``label`` column; nothing is
    read until the optimizer (or ``size()``) asks for it."""
    from bigdl.dllib.feature.common import ScalarToTensor, SeqToTensor
    from bigdl.dllib.nn.criterion import BCECriterion
    from bigdl.dllib.nn.layer import Identity
    from bigdl.dllib.nnframes import NNEstimator

    # the estimator only carries the preprocessing and the cache level; its model and
    # criterion are never used
    estimator = NNEstimator(Identity(), BCECriterion(), SeqToTensor([n_features]),
                            ScalarToTensor()).setFeaturesCol("features").setLabelCol("label")
    if cache_level != "DRAM":
        estimator.setDataCacheLevel(cache_level, slices)
    jvm = frame.sparkSession.sparkContext._jvm
    gateway = frame.sparkSession.sparkContext._gateway
    types = gateway.new_array(jvm.java.lang.Class, 2)
    types[0] = jvm.java.lang.Class.forName("org.apache.spark.sql.Dataset")
    types[1] = jvm.java.lang.Integer.TYPE
    method = estimator.value.getClass().getDeclaredMethod("getDataSet", types)
    method.setAccessible(True)
    args = gateway.new_array(jvm.java.lang.Object, 2)
    args[0], args[1] = frame._jdf, jvm.java.lang.Integer(int(batch_size))
    return method.invoke(estimator.value, args).toDistributed()


def distri_optimizer(spark: "SparkSession", model: Any, dataset: Any, criterion: Any,
                     optim: Any, end_trigger: Any) -> Any:
    """A Python ``DistriOptimizer`` over a JVM ``DistributedDataSet[MiniBatch]``.

    Trap: the Python API builds optimizers from an RDD of Python Samples or, for a DataSet,
    only through ``createDistriOptimizerFromDataSet``, which treats it as ImageFeatures. The
    Scala ``Optimizer(model, dataset, criterion)`` takes any MiniBatch DataSet."""
    from bigdl.dllib.optim.optimizer import DistriOptimizer

    jvm = spark.sparkContext._jvm
    factory = getattr(getattr(jvm.com.intel.analytics.bigdl.dllib.optim, "Optimizer$"),
                      "MODULE$")
    float_tag = getattr(getattr(jvm.scala.reflect, "ClassTag$"), "MODULE$").Float()
    numeric = getattr(getattr(jvm.com.intel.analytics.bigdl.dllib.tensor,
                              "TensorNumericMath$TensorNumeric$NumericFloat$"), "MODULE$")
    value = factory.apply(model.value, dataset, criterion.value, float_tag, numeric)
    value.setOptimMethod(optim.value)
    value.setEndWhen(end_trigger.value)
    optimizer = DistriOptimizer.__new__(DistriOptimizer)  # its __init__ wants an RDD
    optimizer.value, optimizer.bigdl_type = value, "float"
    return optimizer


def storage_memory_per_executor(spark: "SparkSession") -> int:
    """The smallest Spark storage memory (bytes) of the executors that hold training data:
    the driver's in local mode (its JVM runs the tasks), else every executor's but the
    driver's."""
    sc = spark.sparkContext
    status = sc._jsc.sc().getExecutorMemoryStatus()  # "host:port" -> (max, remaining)
    driver = sc._jsc.sc().env().blockManager().blockManagerId().hostPort()
    iterator = status.iterator()
    sizes = {}
    while iterator.hasNext():
        entry = iterator.next()
        sizes[str(entry._1())] = int(entry._2()._1())
    executors = [v for k, v in sizes.items() if k != driver] or list(sizes.values())
    return min(executors)


# --------------------------------------------------------------------------- out of memory
OOM_MARKERS = ("java.lang.OutOfMemoryError", "GC overhead limit exceeded",
               "Java heap space", "exit code 137", "exit status 137", "killed by the OS",
               "oom-kill", "OOMKilled")


# An executor that died (an out-of-memory kill is the usual reason) surfaces on the driver
# as lost shuffle output or a lost executor; the OutOfMemoryError itself stays in the
# executor's stderr, not in the exception the driver gets (seen with BigDL CNN training on
# 1g executors: "MetadataFetchFailedException: Missing an output location for shuffle").
EXECUTOR_LOST_MARKERS = ("MetadataFetchFailedException", "FetchFailedException",
                         "ExecutorLostFailure", "Missing an output location")


def _exception_chain(exc: BaseException | None):
    """``exc`` and what it wraps (``__cause__``, else ``__context__``), each once."""
    seen: set[int] = set()
    while exc is not None and id(exc) not in seen:
        seen.add(id(exc))
        yield exc
        exc = exc.__cause__ or exc.__context__


def executor_lost(exc: BaseException) -> bool:
    """Whether ``exc`` (or what it wraps) says an executor or its shuffle output was lost."""
    return any(marker in str(e) for e in _exception_chain(exc)
               for marker in EXECUTOR_LOST_MARKERS)


def out_of_memory_cause(exc: BaseException) -> str | None:
    """The first line that says ``exc`` (or what it wraps: a Py4JJavaError's Java stack,
    a Spark task failure) is an out-of-memory stop, or None. A Python MemoryError counts."""
    for link in _exception_chain(exc):
        if isinstance(link, MemoryError):
            return f"{type(link).__name__}: {link}".strip()
        text = str(link)
        java = getattr(link, "java_exception", None)
        if java is not None:
            try:
                text += "\n" + str(java.toString())
                cause = java.getCause()
                while cause is not None:
                    text += "\n" + str(cause.toString())
                    cause = cause.getCause()
            except Exception:  # the gateway may be gone with the JVM
                pass
        for line in text.splitlines():
            if any(marker in line for marker in OOM_MARKERS):
                return line.strip()[:300]
    return None
