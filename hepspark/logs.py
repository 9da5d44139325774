"""How loud Spark, BigDL, TensorFlow and MLflow are: INFO chatter off by default, warnings
and errors always shown; ``--verbose`` turns the INFO lines back on.

The entry point (:func:`hepspark.cli.main`) calls :func:`configure_logging` once, before
any of them starts; every SparkSession made by :func:`hepspark.session.get_spark` then
follows :func:`jvm_log_level`. Library users get the quiet default and can ask for more with
the standard logging API:

>>> import logging
>>> logging.getLogger(JVM_LOGGER).setLevel(logging.INFO)  # Spark's INFO lines back
>>> jvm_log_level()
'INFO'
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.abc
import importlib.util
import logging
import os
import re
import sys
import tempfile
from collections.abc import Iterator
from typing import Any

# The Python logger whose level the Spark JVM follows (logging is process-wide already).
JVM_LOGGER = "hepspark.jvm"
# Our log4j2 configuration for the driver JVM: Spark's defaults with the root at WARN.
QUIET_LOG4J2 = os.path.join(os.path.dirname(os.path.abspath(__file__)), "conf",
                            "log4j2-quiet.properties")
# Python loggers of our dependencies that print INFO lines of theirs.
DEPENDENCY_LOGGERS = ("py4j", "absl", "mlflow", "alembic")
_VERBOSE_LEVELS = ("ALL", "TRACE", "DEBUG", "INFO")


def configure_logging(verbose: bool = False) -> None:
    """Quiet (WARN) or ``verbose`` (INFO) logs for this process and the ones it starts.

    Each tool is set through its own knob, before it is imported or started; values the
    user already exported win: ``TF_CPP_MIN_LOG_LEVEL`` (TensorFlow's C++ lines such as
    "oneDNN custom operations are on"), ``MLFLOW_LOGGING_LEVEL`` ("Creating initial MLflow
    database tables"), the Python loggers of py4j, absl, MLflow and alembic, and the
    :data:`JVM_LOGGER` level that :func:`hepspark.session.get_spark` gives the Spark JVM.
    """
    level = logging.INFO if verbose else logging.WARNING
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "0" if verbose else "2")
    os.environ.setdefault("MLFLOW_LOGGING_LEVEL", logging.getLevelName(level))
    for name in (JVM_LOGGER, *DEPENDENCY_LOGGERS):
        logging.getLogger(name).setLevel(level)
    if not verbose and "tensorflow" not in sys.modules and \
            not any(isinstance(f, _QuietTensorFlowImport) for f in sys.meta_path):
        sys.meta_path.insert(0, _QuietTensorFlowImport())


# Lines of absl's C++ logging at INFO ("I0000 00:00:1796119099.447 31212 port.cc:153] ...";
# the time field is not always HH:MM:SS before absl is initialised) and the
# notice absl prints before them.
_NATIVE_INFO_LINE = re.compile(
    rb"^(I\d{4} [\d:.]+ +\d+ \S+:\d+\] |WARNING: All log messages before "
    rb"absl::InitializeLog\(\) is called are written to STDERR)"
)


@contextlib.contextmanager
def native_info_lines_dropped() -> Iterator[None]:
    """Hold what is written to file descriptor 2 (C++ code included) and, afterwards,
    write it back without absl's INFO lines."""
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as held:
        os.dup2(held.fileno(), 2)
        try:
            yield
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            held.seek(0)
            kept = [line for line in held if not _NATIVE_INFO_LINE.match(line)]
            if kept:
                os.write(2, b"".join(kept))


class _QuietTensorFlowImport(importlib.abc.MetaPathFinder):
    """Trap (TensorFlow 2.21): TF_CPP_MIN_LOG_LEVEL does not reach the lines its C++ code
    logs before absl::InitializeLog(): every import prints "oneDNN custom operations are
    on" twice, whatever the level. The first ``import tensorflow``, wherever it happens,
    runs inside :func:`native_info_lines_dropped`; remove this when TF honours the level."""

    def find_spec(self, name: str, path: Any = None, target: Any = None) -> Any:
        if name != "tensorflow":
            return None
        sys.meta_path.remove(self)
        with native_info_lines_dropped():
            importlib.import_module(name)
        return importlib.util.spec_from_loader(name, _AlreadyImported())


class _AlreadyImported(importlib.abc.Loader):
    """Hands the import system the module :class:`_QuietTensorFlowImport` just imported."""

    def create_module(self, spec: Any) -> Any:
        return sys.modules[spec.name]

    def exec_module(self, module: Any) -> None:
        pass


def jvm_log_level() -> str:
    """The Spark JVM's log4j level: INFO when :data:`JVM_LOGGER` is at INFO or lower (as
    ``--verbose`` sets it), else WARN."""
    return "INFO" if logging.getLogger(JVM_LOGGER).getEffectiveLevel() <= logging.INFO \
        else "WARN"


def is_verbose() -> bool:
    """Whether ``--verbose`` (or a library user) asked for the INFO lines: passed on to the
    processes a run starts (Horovod ranks), which do not share this process's loggers."""
    return jvm_log_level() == "INFO"


def is_quiet(log_level: str) -> bool:
    """Whether a Spark log level hides INFO lines (then our log4j2 configuration is used)."""
    return log_level.upper() not in _VERBOSE_LEVELS


def quiet_java_option() -> str:
    """The JVM option that makes a Spark driver started from Python use our configuration."""
    return f"-Dlog4j2.configurationFile={QUIET_LOG4J2}"


def merge_java_options(*options: str | None) -> str:
    """One extraJavaOptions string from several (empty ones and repeats dropped), so that
    hepspark's options never replace each other's or the user's."""
    merged: list[str] = []
    for option in options:
        for part in (option or "").split():
            if part not in merged:
                merged.append(part)
    return " ".join(merged)


def quiet_running_driver(jvm: Any) -> None:
    """Under spark-submit the driver JVM (and its log4j2, at Spark's INFO default) is running
    before Python starts, so a JVM option comes too late: load our configuration into its
    log4j2 context instead, before the SparkContext prints its start-up lines."""
    context = jvm.org.apache.logging.log4j.LogManager.getContext(False)
    context.setConfigLocation(jvm.java.io.File(QUIET_LOG4J2).toURI())
