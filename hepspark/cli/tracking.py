"""``hepspark mlflow-server`` (a local tracking server, :mod:`hepspark.mlflow_server`) and
``hepspark mlflow-import`` (records saved while a server was away)."""
from __future__ import annotations

import argparse
import os

from hepspark.cli.common import say
from hepspark.mlflow_server import (
    DEFAULT_TIMEOUT_S,
    running_server,
    serve_foreground,
    server_healthy,
    start_server,
    stop_server,
)


def add_mlflow_server(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "action", nargs="?", choices=("start", "stop", "status"), default="start",
        help="start (default; foreground unless --detach), stop a detached one, or status",
    )
    parser.add_argument("--store", required=True,
                        help="directory of the runs (mlflow.db), artifacts, log and PID file")
    parser.add_argument("--port", type=int, default=5000, help="port to listen on (5000)")
    parser.add_argument("--host", default="127.0.0.1",
                        help="address to listen on (127.0.0.1; 0.0.0.0 for other machines)")
    parser.add_argument(
        "--allowed-hosts", metavar="HOST[:PORT],...",
        help="Host headers the API accepts (MLflow 3.5+ refuses others with 403; default "
        "localhost and private addresses), e.g. mlflow.hepspark.svc:5000; passed to "
        "'mlflow server --allowed-hosts' with localhost added",
    )
    parser.add_argument("--detach", action="store_true",
                        help="start in the background and return; stop with "
                        "'hepspark mlflow-server stop --store DIR'")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S,
                        help=f"seconds to wait for /health (default {DEFAULT_TIMEOUT_S:.0f})")
    parser.set_defaults(handler=run_mlflow_server)


def run_mlflow_server(args: argparse.Namespace) -> int:
    if args.action == "stop":
        stopped = stop_server(args.store)
        print(f"[mlflow-server] stopped pids {', '.join(map(str, stopped))}" if stopped else
              f"[mlflow-server] no running server recorded in {os.path.abspath(args.store)}")
        return 0
    if args.action == "status":
        info = running_server(args.store)
        if info is None:
            print(f"[mlflow-server] none running from {os.path.abspath(args.store)}")
            return 1
        healthy = server_healthy(info.tracking_uri, timeout_s=5)
        print(info.format())
        print(f"  /health    {'ok' if healthy else 'NOT ANSWERING'}")
        return 0 if healthy else 1
    print(f"[mlflow-server] starting on {args.host}:{args.port} with store "
          f"{os.path.abspath(args.store)} (waits for /health, up to {args.timeout:.0f} s) ...",
          flush=True)
    info = start_server(args.store, args.port, args.host, args.timeout,
                        progress=lambda m: print(m, flush=True),
                        allowed_hosts=args.allowed_hosts)
    print(info.format(), flush=True)
    print(f"TRACKING_URI={info.tracking_uri}", flush=True)
    if args.detach:
        return 0
    return serve_foreground(info, args.store)


def add_mlflow_import(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "directory",
        help="an mlflow-pending-<run_id> directory left by a run whose MLflow server was "
        "unreachable at its end",
    )
    parser.add_argument(
        "--tracking-uri",
        help="the server that holds the run (default $MLFLOW_TRACKING_URI, else "
        "sqlite:///./mlflow.db); required when that is not the server records.json names",
    )
    parser.set_defaults(handler=run_mlflow_import)


def run_mlflow_import(args: argparse.Namespace) -> int:
    from hepspark.tracking import import_pending

    import_pending(args.directory, args.tracking_uri, progress=say)
    return 0
