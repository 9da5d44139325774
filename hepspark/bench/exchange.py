"""The exchange micro-benchmark: what one training step's parameter exchange costs per link.

Horovod's and torch's exchange is a Gloo ring all-reduce of the gradients. For each link and
engine this runs two real ranks (plain processes, launched by hand; see
:mod:`hepspark.bench.exchange_remote`): Horovod's ``hvd.allreduce`` (as ``horovodrun`` would
start it) and ``torch.distributed.all_reduce`` (what the torch engine's
``DistributedDataParallel`` runs per step), each timing the HIGGS DNN's 189,601 float32
gradients and a CNN's (VGG16 on jet images, 1,118,017); and it measures the raw TCP round
trip and bulk rate between the same two addresses. Links:

- ``loopback``: both processes on 127.0.0.1;
- ``veth``: two network namespaces joined by a veth pair (:mod:`hepspark.bench.netns`),
  10.77.0.1 ↔ 10.77.0.2 — a real network stack with a 1500-byte MTU on each side;
- ``veth-10gbit``, ``veth-1gbit`` (any ``veth-<R>gbit`` / ``veth-<R>mbit``): the same,
  shaped with a token-bucket filter (``tc qdisc tbf``) to that rate;
- ``loopback-1gbit`` (any ``loopback-<R>gbit``/``mbit``): 127.0.0.1 with ``lo`` itself
  shaped (:func:`hepspark.bench.netns.shaped_loopback`; one queue for both directions), the
  link ``hepspark bench scaling --link loopback-1gbit`` trains over.

Per link and engine the all-reduce times are fitted as ``t = overhead + 2(N-1)/N·P·8/bandwidth
+ 2(N-1)·latency`` with the TCP-measured latency: this gives the engine's per-all-reduce
software overhead and the effective bandwidth the performance model uses
(:func:`hepspark.bench.perfmodel.load_networks`). BigDL's exchange (each node owns 1/N of
the parameters; per step it fetches N-1 gradient slices and N-1 weight slices through
Spark's block manager) is not measured here: the JSON gives the wire part of it per link.

The JSON written to ``output`` (atomically)::

    {"format": "hepspark-exchange/2", "ranks": 2, "engines": ["horovod", "torch"],
     "links": {"veth-1gbit": {
        "rate_limit_gbps": 1.0, "tcp": {"latency_s": ..., "bandwidth_gbps": ...},
        "horovod": {"allreduce": [{"floats": 189601, "bytes": 758404, "median_s": ...}, ...],
                    "network": {"bandwidth_gbps": ..., "latency_s": ..., "overhead_s": ...}},
        "torch": {...the same...}}, ...}}

Version 1 files (Horovod only) kept ``allreduce`` and ``network`` on the link itself; they
are still read.

>>> run_exchange(ExchangeConfig(output="exchange.json"))   # doctest: +SKIP
"""
from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

import numpy as np

from hepspark.bench import netns
from hepspark.bench.exchange_remote import ProcessSpec
from hepspark.bench.netns import link_rate_gbps

FORMAT = "hepspark-exchange/2"
HIGGS_DNN_PARAMS = 189_601     # 28-300-300-300-1 (hepspark.models.config)
CNN_PARAMS = 1_118_017         # VGG16 on 33x33x2 jet images (benchmarks/results/cnn_zoo_*)
DEFAULT_LINKS = ("loopback", "veth", "veth-10gbit", "veth-1gbit")
ENGINES = ("horovod", "torch")  # whose all-reduce this measures
_ROLES = {"horovod": "allreduce", "torch": "allreduce-torch"}


class ExchangeError(RuntimeError):
    """A benchmark process failed or hung; the message holds its output's tail."""


def default_engines() -> tuple[str, ...]:
    """Horovod, and torch where it is installed (``make install-torch``)."""
    import importlib.util

    return ENGINES if importlib.util.find_spec("torch") is not None else ("horovod",)


@dataclass(frozen=True)
class ExchangeConfig:
    output: str
    links: tuple[str, ...] = DEFAULT_LINKS
    sizes_floats: tuple[int, ...] = (HIGGS_DNN_PARAMS, CNN_PARAMS)
    repeats: int = 50
    bulk_mb: int = 32
    timeout_s: float = 300.0
    python: str = sys.executable
    netns_name: str = ""  # default: hsx<pid>
    overwrite: bool = False
    engines: tuple[str, ...] = ("horovod",)

    def __post_init__(self) -> None:
        for link in self.links:
            link_rate_gbps(link)
        unknown = sorted(set(self.engines) - set(ENGINES))
        if unknown or not self.engines:
            raise ValueError(f"--engines: unknown {', '.join(unknown) or '(none given)'}; "
                             f"choose among {', '.join(ENGINES)}")
        if not self.links or not self.sizes_floats or min(self.sizes_floats) < 1:
            raise ValueError("need at least one link and sizes >= 1 float")
        if self.repeats < 2 or self.bulk_mb < 1:
            raise ValueError("--repeats must be >= 2 and --bulk-mb >= 1")


def _run_pair(specs: list[tuple[list[str], ProcessSpec]], python: str, workdir: str,
              timeout_s: float) -> None:
    """Start both processes (each with its command prefix), wait, fail with their output."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(
        [os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
         os.environ.get("PYTHONPATH", "")]).rstrip(os.pathsep)}
    procs = []
    try:
        for i, (prefix, spec) in enumerate(specs):
            log = open(os.path.join(workdir, f"{spec.role}-{i}.log"), "w")
            procs.append((subprocess.Popen(
                [*prefix, python, "-m", "hepspark.bench.exchange_remote", spec.to_json()],
                stdout=log, stderr=subprocess.STDOUT, env=env), log))
        deadline = time.monotonic() + timeout_s
        # Poll both: when one fails, its peer would wait for it until a Gloo timeout.
        while any(p.poll() is None for p, _ in procs):
            if any(p.poll() not in (None, 0) for p, _ in procs):
                break
            if time.monotonic() > deadline:
                raise ExchangeError(f"exchange benchmark: {specs[0][1].role} did not finish "
                                    f"in {timeout_s:.0f} s (--timeout)")
            time.sleep(0.1)
    finally:
        for proc, log in procs:
            if proc.poll() is None:
                proc.kill()  # only the processes started here, by handle
                proc.wait()
            log.close()
    for (proc, log), (_, spec) in sorted(zip(procs, specs), key=lambda p: p[0][0].returncode < 0):
        if proc.returncode != 0:  # the one that failed first (a killed peer reads < 0)
            with open(log.name) as handle:
                tail = handle.read()[-2000:]
            raise ExchangeError(f"exchange benchmark: {spec.role} rank {spec.rank} exited "
                               f"{proc.returncode}:\n{tail}")


def fit_exchange(allreduce: list[dict], tcp_latency_s: float, ranks: int = 2,
                 tcp_bandwidth_gbps: float | None = None) -> dict:
    """Fit ``t = overhead + 2(N-1)/N·bytes·8/bw + 2(N-1)·tcp_latency`` to the all-reduce
    medians (least squares over the sizes). With one size, or times that do not grow with
    the size (noise on a busy machine), the bandwidth is the TCP one and only the overhead
    is fitted."""
    volume = np.array([2.0 * (ranks - 1) / ranks * r["bytes"] * 8 for r in allreduce])
    t = np.array([r["median_s"] for r in allreduce]) - 2 * (ranks - 1) * tcp_latency_s
    slope = np.polyfit(volume, t, 1)[0] if len(allreduce) > 1 else 0.0
    if slope <= 0:
        if tcp_bandwidth_gbps is None:
            raise ValueError("all-reduce times do not grow with size and no TCP bandwidth "
                             "to fall back on")
        slope = 1.0 / (tcp_bandwidth_gbps * 1e9)
    overhead = max(float(np.mean(t - slope * volume)), 0.0)
    return {"bandwidth_gbps": float(1.0 / slope / 1e9), "latency_s": float(tcp_latency_s),
            "overhead_s": overhead}


def held_out_links(links: dict[str, dict], engine: str = "horovod",
                   ranks: int = 2) -> list[dict]:
    """Each link's all-reduce times of ``engine`` predicted without its own all-reduce
    measurements: its raw TCP bandwidth and latency plus the engine's software overhead
    fitted on the other links. Shows whether a link measured with TCP alone (a cluster's
    iperf) can stand in."""
    out = []
    for name, link in links.items():
        others = [v[engine]["network"]["overhead_s"] for k, v in links.items() if k != name]
        if not others:
            continue
        overhead = float(np.median(others))
        tcp = link["tcp"]
        for r in link[engine]["allreduce"]:
            predicted = (overhead + 2.0 * (ranks - 1) / ranks * r["bytes"] * 8
                         / (tcp["bandwidth_gbps"] * 1e9) + 2 * (ranks - 1) * tcp["latency_s"])
            out.append({"engine": engine, "link": name, "floats": r["floats"],
                        "measured_s": r["median_s"],
                        "predicted_s": predicted, "error": predicted / r["median_s"] - 1.0})
    return out


def _measure_link(config: ExchangeConfig, link: str, prefixes: list[list[str]],
                  addresses: list[str], iface: list[str], workdir: str) -> dict:
    def spec(role: str, rank: int, output: str, port_file: str) -> ProcessSpec:
        return ProcessSpec(role=role, address=addresses[rank], server_address=addresses[0],
                           port_file=port_file, output=output, rank=rank, iface=iface[rank],
                           sizes_floats=tuple(config.sizes_floats), repeats=config.repeats,
                           bulk_bytes=config.bulk_mb << 20)

    tag = os.path.join(workdir, link)
    _run_pair([(prefixes[0], spec("tcp-server", 0, f"{tag}-unused.json", f"{tag}-tcp.port")),
               (prefixes[1], spec("tcp-client", 1, f"{tag}-tcp.json", f"{tag}-tcp.port"))],
              config.python, workdir, config.timeout_s)
    with open(f"{tag}-tcp.json") as handle:
        tcp = json.load(handle)
    result = {"rate_limit_gbps": link_rate_gbps(link), "tcp": tcp}
    for engine in config.engines:
        out = f"{tag}-{engine}"
        _run_pair([(prefixes[r], spec(_ROLES[engine], r, f"{out}.json", f"{out}.port"))
                   for r in (0, 1)], config.python, workdir, config.timeout_s)
        with open(f"{out}.json") as handle:
            allreduce = json.load(handle)["allreduce"]
        for r in allreduce:
            r["algbw_gbps"] = r["bytes"] * 8 / r["median_s"] / 1e9
        result[engine] = {"allreduce": allreduce, "network": fit_exchange(
            allreduce, tcp["latency_s"], tcp_bandwidth_gbps=tcp["bandwidth_gbps"])}
    return result


def run_exchange(config: ExchangeConfig, progress: Callable[[str], None] = print) -> dict:
    """Measure every link of ``config`` and write the JSON (see module); returns it."""
    from hepspark.data import storage

    storage.check_new_output(config.output, config.overwrite)  # before minutes of work
    name = config.netns_name or f"hsx{os.getpid() % 10**8}"
    links: dict[str, dict] = {}
    with tempfile.TemporaryDirectory(prefix="hepspark-exchange-") as workdir, \
            contextlib.ExitStack() as stack:
        pair = None
        for link in config.links:
            progress(f"[exchange] {link}: TCP round trip + bulk, then 2 ranks of "
                     f"{' and '.join(config.engines)} all-reducing "
                     f"{', '.join(f'{n:,d}' for n in config.sizes_floats)} floats")
            if netns.on_loopback(link):
                with netns.shaped_loopback(link_rate_gbps(link)):
                    result = _measure_link(config, link, [[], []], ["127.0.0.1"] * 2,
                                           ["lo"] * 2, workdir)
            else:
                if pair is None:
                    pair = stack.enter_context(netns.veth_link(name))
                pair.shape(link_rate_gbps(link))
                result = _measure_link(config, link, [pair.exec_prefix(0), pair.exec_prefix(1)],
                                       [pair.address(0), pair.address(1)],
                                       [pair.interface(0), pair.interface(1)], workdir)
            links[link] = result
            progress(f"[exchange] {link}: TCP {result['tcp']['bandwidth_gbps']:.2f} Gbit/s, "
                     f"{result['tcp']['latency_s'] * 1e6:.0f} µs")
            for engine in config.engines:
                net = result[engine]["network"]
                progress(f"[exchange] {link}: {engine} all-reduce "
                         + ", ".join(f"{r['floats']:,d} floats {r['median_s'] * 1e3:.2f} ms"
                                     for r in result[engine]["allreduce"])
                         + f"; fit {net['bandwidth_gbps']:.2f} Gbit/s + "
                         f"{net['overhead_s'] * 1e3:.2f} ms per all-reduce")
    held_out = [h for engine in config.engines for h in held_out_links(links, engine)]
    for h in held_out:
        progress(f"[exchange] held out {h['link']}, {h['engine']}, {h['floats']:,d} floats: "
                 f"measured {h['measured_s'] * 1e3:.2f} ms, predicted from its TCP rate and "
                 f"the other links' overhead {h['predicted_s'] * 1e3:.2f} ms "
                 f"({h['error']:+.0%})")
    payload = {"format": FORMAT, "ranks": 2, "engines": list(config.engines),
               "host": platform.node(), "cpu_count": os.cpu_count(), "measured_at": time.strftime("%Y-%m-%d %H:%M:%S"),
               "config": asdict(replace(config, python=os.path.basename(config.python))),
               "links": links, "held_out": held_out}
    tmp = f"{config.output}.tmp-{os.getpid()}"
    os.makedirs(os.path.dirname(os.path.abspath(config.output)), exist_ok=True)
    with open(tmp, "w") as handle:
        json.dump(payload, handle, indent=1)
    storage.publish_file(tmp, config.output, "bench exchange", config.overwrite)
    return payload
