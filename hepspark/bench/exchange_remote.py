"""What each process of the exchange benchmark runs (one process per node, plain processes).

``python -m hepspark.bench.exchange_remote SPEC_JSON`` with a :class:`ProcessSpec`:

- ``role="allreduce"``: one Horovod rank (Gloo, the controller and CPU operations Horovod-on-
  Spark uses), launched by hand the way ``horovod.runner.gloo_run`` does: rank 0 serves the
  rendezvous (``RendezvousServer``) and writes its port to ``port_file``; every rank sets the
  ``HOROVOD_*`` variables of its slot, then times ``hvd.allreduce`` of float32 tensors of each
  size. Rank 0 writes the timings to ``output``.
- ``role="allreduce-torch"``: the same with ``torch.distributed`` over Gloo, the collective
  the torch engine's ``DistributedDataParallel`` runs per step (its default 25 MB bucket
  holds all of the HIGGS DNN's or VGG16's gradients, so one all-reduce per step): rank 0
  hosts the ``TCPStore`` and writes its port to ``port_file``.
- ``role="tcp-server"`` / ``"tcp-client"``: raw TCP between the same two addresses: the
  server writes its port to ``port_file``; the client measures the round trip of a 1-byte
  ping-pong (latency = half of it) and the rate of a bulk send, and writes ``output``.

The driver (:mod:`hepspark.bench.exchange`) runs these inside network namespaces or on
loopback; everything here takes plain values and imports Horovod/TensorFlow inside.
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

PORT_WAIT_S = 120.0


@dataclass(frozen=True)
class ProcessSpec:
    role: str                      # "allreduce", "allreduce-torch", "tcp-server", "tcp-client"
    address: str                   # this process's address (rendezvous/server: where it listens)
    server_address: str            # rank 0's / the server's address
    port_file: str                 # rank 0 / the server writes its port here
    output: str                    # JSON written by rank 0 / the client
    rank: int = 0
    size: int = 2
    iface: str = "lo"              # Gloo's interface (HOROVOD_GLOO_IFACE)
    sizes_floats: tuple[int, ...] = ()
    repeats: int = 50
    warmup: int = 5
    bulk_bytes: int = 32 << 20
    pings: int = 300

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> ProcessSpec:
        values = json.loads(text)
        values["sizes_floats"] = tuple(values["sizes_floats"])
        return cls(**values)


def _write_json(path: str, payload: dict) -> None:
    tmp = f"{path}.tmp-{os.getpid()}"
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1)
    os.replace(tmp, path)


def _publish_port(path: str, port: int) -> None:
    _write_json(path, {"port": port})


def _wait_port(path: str) -> int:
    deadline = time.monotonic() + PORT_WAIT_S
    while time.monotonic() < deadline:
        try:
            with open(path) as handle:
                return int(json.load(handle)["port"])
        except (FileNotFoundError, json.JSONDecodeError, KeyError):
            time.sleep(0.05)
    raise TimeoutError(f"no port in {path} after {PORT_WAIT_S:.0f} s (the peer did not start)")


def join_gloo_ranks(rank: int, size: int, server_address: str, port_file: str,
                    iface: str = "lo"):
    """Make this process Horovod rank ``rank`` of ``size`` over Gloo, launched by hand the way
    ``horovod.runner.gloo_run`` does: rank 0 serves the rendezvous and writes its port to
    ``port_file``, the others read it; every rank sets its slot's ``HOROVOD_*`` variables
    (one rank per host). Call ``hvd.init()`` next. Returns rank 0's RendezvousServer (stop
    it after ``hvd.shutdown()``), else None."""
    server = None
    if rank == 0:
        from horovod.runner.common.util.hosts import get_host_assignments, parse_hosts
        from horovod.runner.http.http_server import RendezvousServer

        server = RendezvousServer(verbose=0)
        port = server.start()
        hosts = ",".join(f"node{r}:1" for r in range(size))
        server.init(get_host_assignments(parse_hosts(hosts), size))
        _publish_port(port_file, port)
    else:
        port = _wait_port(port_file)
    # The variables gloo_run.create_slot_env_vars/create_run_env_vars set for a slot: one
    # rank per host, so local rank 0 of size 1 and cross rank = rank.
    os.environ.update({
        "HOROVOD_GLOO_RENDEZVOUS_ADDR": server_address,
        "HOROVOD_GLOO_RENDEZVOUS_PORT": str(port),
        "HOROVOD_CONTROLLER": "gloo", "HOROVOD_CPU_OPERATIONS": "gloo",
        "HOROVOD_GLOO_IFACE": iface, "HOROVOD_HOSTNAME": f"node{rank}",
        "HOROVOD_RANK": str(rank), "HOROVOD_SIZE": str(size),
        "HOROVOD_LOCAL_RANK": "0", "HOROVOD_LOCAL_SIZE": "1",
        "HOROVOD_CROSS_RANK": str(rank), "HOROVOD_CROSS_SIZE": str(size),
        "TF_CPP_MIN_LOG_LEVEL": "2",
    })
    return server


def _time_allreduces(spec: ProcessSpec,
                     allreduce: Callable[[int], Callable[[], None]]) -> list[dict]:
    """Per size of ``spec``: ``allreduce(n)`` gives the call that all-reduces n floats; it is
    run ``warmup`` times, then timed ``repeats`` times."""
    results = []
    for n in spec.sizes_floats:
        call = allreduce(n)
        times = []
        for i in range(spec.warmup + spec.repeats):
            start = time.perf_counter()
            call()
            if i >= spec.warmup:
                times.append(time.perf_counter() - start)
        results.append({"floats": n, "bytes": 4 * n, "times_s": times,
                        "median_s": statistics.median(times)})
    return results


def run_allreduce(spec: ProcessSpec) -> None:
    """One Horovod rank timing ``hvd.allreduce`` (see module)."""
    server = join_gloo_ranks(spec.rank, spec.size, spec.server_address, spec.port_file,
                             spec.iface)
    import horovod.tensorflow as hvd
    import numpy as np
    import tensorflow as tf

    tf.config.threading.set_intra_op_parallelism_threads(1)
    hvd.init()
    def allreduce(n: int) -> Callable[[], None]:
        tensor = tf.constant(np.ones(n, np.float32))
        # eager: the call returns when the reduction is done; .numpy() to be sure
        return lambda: hvd.allreduce(tensor, op=hvd.Sum, name=f"x{n}").numpy()

    results = _time_allreduces(spec, allreduce)
    hvd.shutdown()
    if spec.rank == 0:
        _write_json(spec.output, {"engine": "horovod-gloo", "ranks": spec.size,
                                  "allreduce": results})
    if server is not None:
        server.stop()


def run_torch_allreduce(spec: ProcessSpec) -> None:
    """One torch.distributed rank (Gloo) timing ``dist.all_reduce`` (see module)."""
    import datetime

    os.environ["GLOO_SOCKET_IFNAME"] = spec.iface
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    timeout = datetime.timedelta(seconds=PORT_WAIT_S)
    if spec.rank == 0:  # port 0: the store binds a free port, published for the peer (not
        # waiting for the workers here: they learn the port only after this returns)
        store = dist.TCPStore(spec.address, 0, spec.size, is_master=True, timeout=timeout,
                              wait_for_workers=False)
        _publish_port(spec.port_file, store.port)
    else:
        store = dist.TCPStore(spec.server_address, _wait_port(spec.port_file), spec.size,
                              is_master=False, timeout=timeout)
    dist.init_process_group("gloo", store=store, rank=spec.rank, world_size=spec.size,
                            timeout=timeout)
    def allreduce(n: int) -> Callable[[], None]:
        tensor = torch.ones(n, dtype=torch.float32)
        return lambda: dist.all_reduce(tensor)  # synchronous on Gloo: returns with the sum

    results = _time_allreduces(spec, allreduce)
    dist.destroy_process_group()
    if spec.rank == 0:
        _write_json(spec.output, {"engine": "torch-gloo", "ranks": spec.size,
                                  "allreduce": results})


def run_tcp_server(spec: ProcessSpec) -> None:
    """Echo one byte per ping; after the pings, read bulk sends and ack each with a byte."""
    with socket.create_server((spec.address, 0)) as listener:
        _publish_port(spec.port_file, listener.getsockname()[1])
        conn, _ = listener.accept()
        with conn:
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            for _ in range(spec.pings):
                conn.sendall(conn.recv(1))
            buffer = bytearray(1 << 20)
            while True:
                header = conn.recv(8)
                if len(header) < 8:
                    return
                remaining = int.from_bytes(header, "big")
                while remaining:
                    remaining -= conn.recv_into(buffer, min(len(buffer), remaining))
                conn.sendall(b"k")


def run_tcp_client(spec: ProcessSpec, bulk_repeats: int = 3) -> None:
    """Round-trip latency and bulk bandwidth to the server (see module)."""
    port = _wait_port(spec.port_file)
    with socket.create_connection((spec.server_address, port), timeout=PORT_WAIT_S) as conn:
        conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        rtts = []
        for _ in range(spec.pings):
            start = time.perf_counter()
            conn.sendall(b"p")
            conn.recv(1)
            rtts.append(time.perf_counter() - start)
        payload = memoryview(bytearray(1 << 20))
        rates = []
        for _ in range(bulk_repeats):
            start = time.perf_counter()
            conn.sendall(spec.bulk_bytes.to_bytes(8, "big"))
            sent = 0
            while sent < spec.bulk_bytes:
                chunk = payload[: min(len(payload), spec.bulk_bytes - sent)]
                conn.sendall(chunk)
                sent += len(chunk)
            conn.recv(1)
            rates.append(spec.bulk_bytes * 8 / (time.perf_counter() - start) / 1e9)
    warm = rtts[len(rtts) // 10:]  # the first round trips pay slow start and page faults
    _write_json(spec.output, {
        "latency_s": statistics.median(warm) / 2, "rtt_s": statistics.median(warm),
        "bandwidth_gbps": statistics.median(rates), "bandwidth_runs_gbps": rates,
        "bulk_bytes": spec.bulk_bytes})


def main(argv: list[str]) -> int:
    spec = ProcessSpec.from_json(argv[0])
    {"allreduce": run_allreduce, "allreduce-torch": run_torch_allreduce,
     "tcp-server": run_tcp_server, "tcp-client": run_tcp_client}[spec.role](spec)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
