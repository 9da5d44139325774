"""A two-node network on one machine: two network namespaces joined by a veth pair.

``veth_link("hsx1234")`` creates the namespaces ``hsx1234a`` and ``hsx1234b`` with
``10.77.0.1/24`` and ``10.77.0.2/24`` on the two ends of a veth pair, yields a
:class:`VethLink`, and deletes exactly those namespaces (which removes the veth pair) when
the block ends, also on error. ``link.shape(1.0)`` puts a token-bucket filter (``tc qdisc
tbf``) of 1 Gbit/s on both ends; ``link.shape(None)`` removes it. Needs root (``ip netns``).
Only the addresses of the namespaces it created are used.

>>> with veth_link("hsx42") as link:             # doctest: +SKIP
...     link.shape(10.0)
...     subprocess.run([*link.exec_prefix(0), "ping", "-c1", link.address(1)])

``shaped_loopback(1.0)`` puts the same filter on ``lo`` itself for the duration of a block,
so whole training jobs on 127.0.0.1 (a sweep's cluster, its ranks' all-reduces) run over a
slower link without leaving the host namespace. ``lo`` has one queue for both directions:
the rate is shared by the two directions of an exchange. It refuses a ``lo`` that already
has a queueing discipline (someone else's), and removes only its own.

Link names (:func:`link_rate_gbps`): ``loopback`` and ``veth`` unshaped, ``veth-10gbit``,
``loopback-1gbit``, ``veth-500mbit`` shaped.
"""
from __future__ import annotations

import contextlib
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass

SUBNET = "10.77.0"
NETNS_ETC = "/etc/netns"  # `ip netns exec NS` bind-mounts /etc/netns/NS/* over /etc/*


class NetnsUnavailable(RuntimeError):
    """``ip netns`` cannot create namespaces here, or ``tc`` cannot shape a link (not root, no
    iproute2, a sandbox, a queue someone else put on ``lo``)."""


_SHAPED = re.compile(r"^(veth|loopback)-(\d+(?:\.\d+)?)(gbit|mbit)$")


def link_rate_gbps(link: str) -> float | None:
    """The tbf rate of a link name (``veth-10gbit`` → 10.0); None for unshaped links."""
    if link in ("loopback", "veth"):
        return None
    match = _SHAPED.match(link)
    if not match:
        raise ValueError(f"unknown link {link!r}: use loopback, veth, or either shaped as "
                         "<link>-<R>gbit or <link>-<R>mbit (e.g. veth-10gbit, loopback-1gbit, "
                         "veth-500mbit)")
    rate = float(match.group(2))
    return rate if match.group(3) == "gbit" else rate / 1000.0


def on_loopback(link: str) -> bool:
    """Whether ``link`` runs over ``lo`` (shaped or not) rather than a veth pair."""
    link_rate_gbps(link)  # an unknown name is refused
    return link.split("-", 1)[0] == "loopback"


def _tbf(rate_gbps: float) -> list[str]:
    rate_bits = rate_gbps * 1e9
    # Bucket of 1 ms at the rate (at least 128 KiB, so one 64 KiB GSO segment fits): a
    # larger bucket would let a whole model-sized exchange pass unshaped.
    burst = max(int(rate_bits / 8 / 1000), 128 * 1024)
    return ["tbf", "rate", f"{int(rate_bits)}bit", "burst", str(burst), "latency", "20ms"]


def _tc(*args: str) -> str:
    try:
        done = subprocess.run(["tc", *args], capture_output=True, text=True)
    except FileNotFoundError:
        raise NetnsUnavailable("no 'tc' here: shaping a link needs iproute2 "
                               "(apt-get install iproute2) and root") from None
    if done.returncode != 0:
        raise NetnsUnavailable(f"'tc {' '.join(args)}' failed: {done.stderr.strip()}; shaping "
                               "a link needs root (or use the unshaped 'loopback')")
    return done.stdout


@contextlib.contextmanager
def shaped_loopback(rate_gbps: float | None) -> Iterator[None]:
    """``lo`` limited to ``rate_gbps`` (both directions together) for the block; see module.
    ``None`` (an unshaped link, :func:`link_rate_gbps`) leaves ``lo`` untouched. A ``lo``
    that already has a root queue other than the kernel's default is refused, as it is not
    hepspark's to replace."""
    if rate_gbps is None:
        yield
        return
    shown = _tc("qdisc", "show", "dev", "lo")
    foreign = [line for line in shown.splitlines()
               if " root " in f"{line} " and not line.startswith("qdisc noqueue")]
    if foreign:
        raise NetnsUnavailable(f"lo already has a queueing discipline hepspark did not add "
                               f"({foreign[0].strip()}); remove it ('tc qdisc del dev lo "
                               "root') if it is yours, or use the unshaped 'loopback'")
    _tc("qdisc", "add", "dev", "lo", "root", *_tbf(rate_gbps))
    try:
        yield
    finally:
        _tc("qdisc", "del", "dev", "lo", "root")


def _ip(*args: str) -> None:
    done = subprocess.run(["ip", *args], capture_output=True, text=True)
    if done.returncode != 0:
        raise NetnsUnavailable(f"'ip {' '.join(args)}' failed: {done.stderr.strip()}; veth links "
                               "need root and iproute2 (or measure --links loopback only)")


@dataclass(frozen=True)
class VethLink:
    """Two namespaces ``{name}a``/``{name}b`` with a veth end each (``{name}a0``/``{name}b0``)."""

    name: str

    def namespace(self, side: int) -> str:
        return f"{self.name}{'ab'[side]}"

    def interface(self, side: int) -> str:
        return f"{self.name}{'ab'[side]}0"

    def address(self, side: int) -> str:
        return f"{SUBNET}.{side + 1}"

    def exec_prefix(self, side: int) -> list[str]:
        """The command prefix that runs a program inside namespace ``side`` (0 or 1)."""
        return ["ip", "netns", "exec", self.namespace(side)]

    def shape(self, rate_gbps: float | None) -> None:
        """Limit both directions to ``rate_gbps`` with tbf (``None``: unshaped)."""
        for side in (0, 1):
            dev = self.interface(side)
            base = ["netns", "exec", self.namespace(side), "tc", "qdisc"]
            with contextlib.suppress(NetnsUnavailable):  # nothing to delete when unshaped
                _ip(*base, "del", "dev", dev, "root")
            if rate_gbps is not None:
                _ip(*base, "add", "dev", dev, "root", *_tbf(rate_gbps))


def delete_namespaces(name: str) -> None:
    """Delete the two namespaces of link ``name`` if they exist (idempotent)."""
    for side in "ab":
        subprocess.run(["ip", "netns", "del", f"{name}{side}"], capture_output=True)


@contextlib.contextmanager
def veth_link(name: str) -> Iterator[VethLink]:
    """Create the link (see module); always deletes the namespaces it made."""
    if len(name) > 12 or not name.isalnum():
        raise ValueError(f"link name must be 1-12 letters/digits (interface names), got {name!r}")
    link = VethLink(name)
    made_etc = not os.path.exists(NETNS_ETC)
    try:
        for side in (0, 1):
            _ip("netns", "add", link.namespace(side))
            _write_hosts(link, side)
        _ip("link", "add", link.interface(0), "netns", link.namespace(0), "type", "veth",
            "peer", "name", link.interface(1), "netns", link.namespace(1))
        for side in (0, 1):
            ns = ["netns", "exec", link.namespace(side), "ip"]
            _ip(*ns, "addr", "add", f"{link.address(side)}/24", "dev", link.interface(side))
            _ip(*ns, "link", "set", link.interface(side), "up")
            _ip(*ns, "link", "set", "lo", "up")
        yield link
    finally:
        delete_namespaces(name)
        for side in (0, 1):
            shutil.rmtree(os.path.join(NETNS_ETC, link.namespace(side)), ignore_errors=True)
        if made_etc:
            with contextlib.suppress(OSError):
                os.rmdir(NETNS_ETC)  # only if empty: another tool's namespaces may live there


def _write_hosts(link: VethLink, side: int) -> None:
    """Inside the namespace, this machine's hostname resolves to the namespace's address.

    Horovod 0.28.1 bug: the Gloo context of a process set (``GlooContext::
    InitializeForProcessSet``) ignores ``HOROVOD_GLOO_IFACE`` and binds to the address of
    the hostname, 127.0.0.1 here; a rank in a namespace would then advertise an address its
    peer cannot reach. On a real cluster the hostname resolves to the node's address.
    """
    directory = os.path.join(NETNS_ETC, link.namespace(side))
    os.makedirs(directory, exist_ok=True)
    with open(os.path.join(directory, "hosts"), "w") as handle:
        handle.write(f"127.0.0.1 localhost\n{link.address(side)} {socket.gethostname()}\n")
