"""A local MLflow tracking server: sqlite store + served artifacts, one worker.

    hepspark mlflow-server --port 5000 --store mlflow-store            # foreground, Ctrl-C stops
    hepspark mlflow-server --port 5000 --store mlflow-store --detach   # background
    hepspark mlflow-server stop --store mlflow-store

The server keeps runs in ``STORE/mlflow.db`` and artifacts in ``STORE/artifacts``, served
over HTTP (``--serve-artifacts``), so clients on other machines (Spark drivers, executors)
need no shared filesystem. It is started in a new process group (``mlflow server`` spawns
uvicorn); its PID, port and log file are recorded in ``STORE/mlflow-server.json`` so that
``stop`` signals exactly the processes of that group that still run MLflow, nothing else.

MLflow 3.5+ answers its API only to requests whose Host header is localhost or a private
address (``/health`` answers any): clients that reach the server by another name (a
Kubernetes Service, a DNS name) need ``--allowed-hosts NAME:PORT,...``, passed through to
``mlflow server --allowed-hosts`` with localhost added (the list replaces MLflow's default).

>>> info = start_server("store", port=5000)
>>> info.tracking_uri
'http://127.0.0.1:5000'
>>> stop_server("store")
"""
from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import asdict, dataclass

from hepspark.tracking import server_healthy

STATE_FILE = "mlflow-server.json"
DB_FILE = "mlflow.db"
ARTIFACTS_DIR = "artifacts"
LOG_FILE = "mlflow-server.log"
# `mlflow server` answers /health after 30-75 s on a busy 2-core machine (STACK.md).
DEFAULT_TIMEOUT_S = 180.0
# `mlflow server --allowed-hosts` replaces MLflow's default list; these keep the server
# usable from its own machine (the UI through `kubectl port-forward`, local clients).
LOOPBACK_HOSTS = "localhost,localhost:*,127.0.0.1,127.0.0.1:*"
_POLL_S = 0.5


class ServerError(RuntimeError):
    """The MLflow server could not be started, or one already runs from the store."""


@dataclass(frozen=True)
class ServerInfo:
    """What :func:`start_server` started; stored verbatim in ``STORE/mlflow-server.json``."""

    pid: int  # the `mlflow server` process, leader of its own process group
    host: str
    port: int
    store: str
    backend_store_uri: str
    artifacts: str
    log: str
    allowed_hosts: str | None = None  # mlflow server --allowed-hosts; None: MLflow's default

    @property
    def tracking_uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    def format(self) -> str:
        return "\n".join([
            f"MLflow tracking server {self.tracking_uri}   (pid {self.pid})",
            f"  runs       {self.backend_store_uri}",
            f"  artifacts  {self.artifacts} (served by the server)",
            f"  log        {self.log}",
            f"  use        --tracking-uri {self.tracking_uri}   "
            f"or MLFLOW_TRACKING_URI={self.tracking_uri}",
            f"  stop       hepspark mlflow-server stop --store {self.store}",
        ])


def server_command(store: str, port: int, host: str = "127.0.0.1",
                   allowed_hosts: str | None = None) -> list[str]:
    """argv of the `mlflow server` for ``store`` (absolute paths)."""
    store = os.path.abspath(store)
    mlflow_bin = os.path.join(os.path.dirname(sys.executable), "mlflow")
    launcher = [mlflow_bin] if os.path.exists(mlflow_bin) else [sys.executable, "-m", "mlflow"]
    return [
        *launcher, "server",
        "--backend-store-uri", "sqlite:///" + os.path.join(store, DB_FILE),
        "--artifacts-destination", os.path.join(store, ARTIFACTS_DIR),
        "--serve-artifacts",
        "--host", host, "--port", str(port), "--workers", "1",
        *(["--allowed-hosts", f"{allowed_hosts},{LOOPBACK_HOSTS}"] if allowed_hosts else []),
    ]


# ------------------------------------------------------------------ processes by PID
def _cmdline(pid: int) -> list[bytes]:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().split(b"\0")
    except OSError:
        return []


def _pgid(pid: int) -> int | None:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return None if fields[0] == "Z" else int(fields[2])
    except (OSError, IndexError, ValueError):
        return None


def _server_processes(info: ServerInfo) -> list[int]:
    """PIDs in the recorded process group that run MLflow (the server and its uvicorn
    worker); a reused PID or group of another program matches nothing."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        pid = int(entry)
        if _pgid(pid) != info.pid:
            continue
        text = b" ".join(_cmdline(pid))
        if b"mlflow" in text:
            pids.append(pid)
    return pids


def _is_our_server(info: ServerInfo) -> bool:
    argv = _cmdline(info.pid)
    return b"server" in argv and str(info.port).encode() in argv and any(
        b"mlflow" in part for part in argv
    )


def _reap(pid: int) -> None:
    with contextlib.suppress(ChildProcessError, OSError):
        os.waitpid(pid, os.WNOHANG)


def _signal_all(pids: list[int], sig: int) -> None:
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, sig)


def _wait_gone(info: ServerInfo, pids: list[int], timeout_s: float) -> list[int]:
    deadline = time.monotonic() + timeout_s
    while True:
        _reap(info.pid)  # our child when started by this process (foreground, tests)
        left = [pid for pid in pids if _pgid(pid) == info.pid]
        if not left or time.monotonic() > deadline:
            return left
        time.sleep(0.2)


def _stop_processes(info: ServerInfo, timeout_s: float) -> list[int]:
    """SIGTERM the server's MLflow processes, SIGKILL what is left after ``timeout_s``."""
    pids = _server_processes(info)
    _signal_all(pids, signal.SIGTERM)
    left = _wait_gone(info, pids, timeout_s)
    if left:
        _signal_all(left, signal.SIGKILL)
        if _wait_gone(info, left, 10):
            raise ServerError(f"MLflow server PIDs {left} survived SIGKILL")
    return pids


# --------------------------------------------------------------------------- state file
def _state_path(store: str) -> str:
    return os.path.join(os.path.abspath(store), STATE_FILE)


def _load(store: str) -> ServerInfo | None:
    path = _state_path(store)
    try:
        with open(path) as handle:
            return ServerInfo(**json.load(handle))
    except FileNotFoundError:
        return None
    except (OSError, ValueError, TypeError) as exc:
        raise ServerError(
            f"cannot read {path} ({exc}); check with ps that no MLflow server of that store "
            "still runs, then delete it"
        ) from exc


def running_server(store: str) -> ServerInfo | None:
    """The server recorded in ``store`` if it still runs; a stale record is deleted."""
    info = _load(store)
    if info is None:
        return None
    if _is_our_server(info) or _server_processes(info):
        return info
    os.remove(_state_path(store))
    return None


# ------------------------------------------------------------------------ start / stop
def start_server(
    store: str,
    port: int,
    host: str = "127.0.0.1",
    timeout_s: float = DEFAULT_TIMEOUT_S,
    progress=None,
    allowed_hosts: str | None = None,
) -> ServerInfo:
    """Start ``mlflow server`` on ``store`` and return once ``/health`` answers;
    ``allowed_hosts`` (``"mlflow.ns.svc:5000,..."``) are the Host headers its API accepts,
    with localhost, instead of MLflow's default (localhost and private addresses).

    The server runs in the background (its own process group) until :func:`stop_server`.
    """
    if not 0 < port < 65536:
        raise ValueError(f"port must be in 1..65535, got {port}")
    store = os.path.abspath(store)
    os.makedirs(os.path.join(store, ARTIFACTS_DIR), exist_ok=True)
    running = running_server(store)
    if running is not None:
        raise ServerError(
            f"an MLflow server of {store} still runs ({running.tracking_uri}, pid "
            f"{running.pid}); stop it first: hepspark mlflow-server stop --store {store}"
        )
    probe = f"http://{host}:{port}"
    if server_healthy(probe, timeout_s=2):
        raise ServerError(f"something already answers on {probe}; choose another --port")
    log = os.path.join(store, LOG_FILE)
    env = {
        **os.environ,
        # mlflow 3.x starts a job runner with seven huey consumer processes by default;
        # tracking does not use it.
        "MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false",
    }
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            server_command(store, port, host, allowed_hosts), stdin=subprocess.DEVNULL, stdout=out,
            stderr=subprocess.STDOUT, env=env, start_new_session=True, cwd=store,
        )
    info = ServerInfo(
        pid=proc.pid, host=host, port=port, store=store,
        backend_store_uri="sqlite:///" + os.path.join(store, DB_FILE),
        artifacts=os.path.join(store, ARTIFACTS_DIR), log=log, allowed_hosts=allowed_hosts,
    )
    _save(info)
    start = time.monotonic()
    try:
        while not server_healthy(info.tracking_uri, timeout_s=2):
            if proc.poll() is not None:
                raise ServerError(
                    f"mlflow server exited with status {proc.returncode} before answering "
                    f"/health; the end of {log}:\n{_tail(log)}"
                )
            if time.monotonic() - start > timeout_s:
                raise ServerError(
                    f"mlflow server did not answer {info.tracking_uri}/health within "
                    f"{timeout_s:.0f} s; the end of {log}:\n{_tail(log)}"
                )
            time.sleep(_POLL_S)
    except BaseException:
        _stop_processes(info, timeout_s=10)
        proc.wait()
        with contextlib.suppress(FileNotFoundError):
            os.remove(_state_path(store))
        raise
    if progress:
        progress(f"[mlflow-server] /health answered after {time.monotonic() - start:.1f} s")
    return info


def _save(info: ServerInfo) -> None:
    path = _state_path(info.store)
    with open(path + ".tmp", "w") as handle:
        json.dump(asdict(info), handle, indent=2)
    os.replace(path + ".tmp", path)


def _tail(path: str, lines: int = 15) -> str:
    try:
        with open(path, errors="replace") as handle:
            return "".join(handle.readlines()[-lines:]).rstrip()
    except OSError:
        return "(no log)"


def stop_server(store: str, timeout_s: float = 30) -> list[int]:
    """Stop the server recorded in ``store`` (SIGTERM, SIGKILL after ``timeout_s``) and
    delete the record. Returns the PIDs signalled; nothing recorded or running: ``[]``."""
    info = _load(store)
    if info is None:
        return []
    stopped = _stop_processes(info, timeout_s)
    with contextlib.suppress(FileNotFoundError):
        os.remove(_state_path(store))
    return stopped


@contextlib.contextmanager
def mlflow_server(store: str, port: int, host: str = "127.0.0.1",
                  timeout_s: float = DEFAULT_TIMEOUT_S):
    """A server for the duration of a ``with`` block, stopped on exit, errors included."""
    info = start_server(store, port, host, timeout_s)
    try:
        yield info
    finally:
        stop_server(store)


def serve_foreground(info: ServerInfo, store: str) -> int:
    """Wait on a started server until it exits (1, with the end of its log) or the user
    stops it with Ctrl-C or SIGTERM (0, the server stopped)."""
    print("[mlflow-server] running in the foreground; Ctrl-C stops it", flush=True)
    try:
        while _is_our_server(info):
            _reap(info.pid)
            time.sleep(1)
        print(f"[mlflow-server] the server exited; the end of {info.log}:\n{_tail(info.log)}",
              file=sys.stderr)
        stop_server(store)
        return 1
    except KeyboardInterrupt:
        stopped = stop_server(store)
        print(f"[mlflow-server] stopped pids {', '.join(map(str, stopped))}", flush=True)
        return 0
