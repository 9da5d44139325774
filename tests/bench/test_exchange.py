"""The exchange benchmark, for real: two Horovod ranks (Gloo) and a TCP pair over loopback,
over a veth link between two network namespaces shaped with tbf, and over loopback itself
shaped (needs root)."""
import json
import os
import subprocess

import pytest

from hepspark.bench.exchange import FORMAT, ExchangeConfig, link_rate_gbps, run_exchange
from hepspark.bench.netns import NetnsUnavailable, on_loopback, shaped_loopback, veth_link
from hepspark.bench.perfmodel import load_networks
from hepspark.cli import main


@pytest.fixture(scope="module")
def netns_works():
    try:
        with veth_link(f"hsxp{os.getpid() % 10**6}"):
            pass
    except (NetnsUnavailable, FileNotFoundError, PermissionError) as error:
        pytest.skip(f"cannot create network namespaces here: {error}")


def test_exchange_over_loopback_and_a_shaped_veth_link(netns_works, tmp_path, capsys):
    pytest.importorskip("torch")
    out = tmp_path / "exchange.json"
    code = main(["bench", "exchange", "--links", "loopback,veth-200mbit,loopback-200mbit",
                 "--sizes", "1000,50000",
                 "--repeats", "5", "--bulk-mb", "4", "--engines", "horovod,torch",
                 "--output", str(out)])
    assert code == 0
    data = json.loads(out.read_text())
    assert data["format"] == FORMAT and data["ranks"] == 2
    assert data["engines"] == ["horovod", "torch"]
    assert list(data["links"]) == ["loopback", "veth-200mbit", "loopback-200mbit"]
    for link in data["links"].values():
        assert link["tcp"]["latency_s"] > 0 and link["tcp"]["bandwidth_gbps"] > 0
        for engine in ("horovod", "torch"):  # both engines' rank pairs ran and timed
            allreduce = link[engine]["allreduce"]
            assert [r["floats"] for r in allreduce] == [1000, 50000]
            assert all(r["median_s"] > 0 and len(r["times_s"]) == 5 for r in allreduce)
            assert set(link[engine]["network"]) == {"bandwidth_gbps", "latency_s", "overhead_s"}
    # each link's all-reduce predicted from its TCP rate + the other link's overhead
    assert [(h["engine"], h["link"], h["floats"]) for h in data["held_out"]] == [
        (e, link, n) for e in ("horovod", "torch")
        for link in ("loopback", "veth-200mbit", "loopback-200mbit") for n in (1000, 50000)]
    assert all(h["predicted_s"] > 0 for h in data["held_out"])
    loop, shaped = data["links"]["loopback"], data["links"]["veth-200mbit"]
    assert loop["rate_limit_gbps"] is None and shaped["rate_limit_gbps"] == 0.2
    # tbf holds the veth link at 200 Mbit/s, far below what loopback carries
    assert shaped["tcp"]["bandwidth_gbps"] < 0.3 < loop["tcp"]["bandwidth_gbps"]
    # 50,000 floats (200 kB) over 200 Mbit/s take >= 8 ms of wire per direction for either
    # engine's ring, whatever its software overhead
    assert all(shaped[e]["allreduce"][1]["median_s"] > 0.008 for e in ("horovod", "torch"))
    # lo shaped the same way holds 127.0.0.1 to 200 Mbit/s too (one queue, both directions),
    # and is left as it was
    slow_lo = data["links"]["loopback-200mbit"]
    assert slow_lo["rate_limit_gbps"] == 0.2 and slow_lo["tcp"]["bandwidth_gbps"] < 0.3
    assert all(slow_lo[e]["allreduce"][1]["median_s"] > 0.008 for e in ("horovod", "torch"))
    assert subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True,
                          text=True).stdout.startswith("qdisc noqueue")
    # the model reads each engine's links, and the namespaces are gone
    for engine in ("horovod", "torch"):
        nets = load_networks(str(out), engine)
        assert set(nets) == {"loopback", "veth-200mbit", "loopback-200mbit"}
        assert nets["loopback"].overhead_s == data["links"]["loopback"][engine]["network"][
            "overhead_s"]
    assert "hsx" not in subprocess.run(["ip", "netns", "list"], capture_output=True,
                                       text=True).stdout
    assert "report scaling --exchange" in capsys.readouterr().out  # the next step
    # a second run does not replace it silently (before any measurement)
    with pytest.raises(FileExistsError, match="--overwrite"):
        run_exchange(ExchangeConfig(output=str(out), links=("loopback",)))


def test_engines_are_checked_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="--engines: unknown bigdl; choose among horovod, torch"):
        ExchangeConfig(output=str(tmp_path / "x.json"), engines=("horovod", "bigdl"))
    assert main(["bench", "exchange", "--engines", "mpi", "--output",
                 str(tmp_path / "x.json")]) != 0
    assert not (tmp_path / "x.json").exists()


def test_link_names_are_checked_before_any_work():
    assert link_rate_gbps("veth-500mbit") == 0.5 and link_rate_gbps("veth") is None
    assert link_rate_gbps("loopback-1gbit") == 1.0 and link_rate_gbps("loopback") is None
    assert on_loopback("loopback-1gbit") and on_loopback("loopback")
    assert not on_loopback("veth-10gbit")
    with pytest.raises(ValueError, match="unknown link 'eth0'"):
        ExchangeConfig(output="x.json", links=("eth0",))


def test_shaped_loopback_refuses_a_queue_it_did_not_add_and_removes_only_its_own(netns_works):
    def lo_qdisc() -> str:
        return subprocess.run(["tc", "qdisc", "show", "dev", "lo"], capture_output=True,
                              text=True, check=True).stdout

    assert lo_qdisc().startswith("qdisc noqueue")
    with shaped_loopback(None):  # an unshaped link leaves lo as it is
        assert lo_qdisc().startswith("qdisc noqueue")
    with shaped_loopback(0.5):
        assert "tbf" in lo_qdisc() and "500Mbit" in lo_qdisc()
        # a second shaping (another sweep, or the user's own qdisc) is refused, untouched
        with pytest.raises(NetnsUnavailable, match="lo already has a queueing discipline "
                           "hepspark did not add .*tbf"):
            with shaped_loopback(1.0):
                pass
        assert "500Mbit" in lo_qdisc()
    assert lo_qdisc().startswith("qdisc noqueue")
