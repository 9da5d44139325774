"""The performance model recovers known parameters from synthetic epochs, and says what it
cannot know."""
import numpy as np
import pytest

from hepspark.bench.perfmodel import (
    LOOPBACK,
    Measurement,
    Network,
    PerfModel,
    fit_perf_model,
    gain_per_added_node,
    ring_allreduce_s,
)

PARAM_BYTES = 4 * 189_601  # the 3x300 HIGGS DNN in float32


def synthetic(truth: PerfModel, nodes, batches, rows=200_000, noise=0.005, seed=0):
    rng = np.random.default_rng(seed)
    out = []
    for n in nodes:
        for b in batches:
            exact = truth.fitted_time_s(Measurement(n, rows, b * n, 0.0))
            out.append(Measurement(n, rows, b * n, exact * (1 + noise * rng.standard_normal())))
    return out


def truth(a=12e-6, b=4e-3, c=1.5e-3) -> PerfModel:
    return PerfModel("horovod", a, b, c, PARAM_BYTES, LOOPBACK, Network(), None)


def test_fit_recovers_known_parameters_within_a_few_percent():
    known = truth()
    fitted = fit_perf_model("horovod", synthetic(known, (1, 2, 4), (500, 1000, 2000)),
                            PARAM_BYTES)
    assert fitted.row_time_s == pytest.approx(known.row_time_s, rel=0.03)
    assert fitted.step_time_s == pytest.approx(known.step_time_s, rel=0.05)
    assert fitted.peer_step_time_s == pytest.approx(known.peer_step_time_s, rel=0.05)
    assert fitted.notes == ()
    # and predicts a configuration it never saw, on the measured network
    unseen = Measurement(8, 1_000_000, 8 * 750, 0.0)
    assert fitted.fitted_time_s(unseen) == pytest.approx(known.fitted_time_s(unseen), rel=0.03)


def test_a_wrong_model_shows_in_the_fit():
    # epochs that grow quadratically with N are not what the model can describe
    ms = [Measurement(n, 100_000, 1000 * n, 1.0 + 0.5 * n * n) for n in (1, 2, 3, 4)]
    fitted = fit_perf_model("horovod", ms, PARAM_BYTES)
    errors = [abs(fitted.fitted_time_s(m) / m.epoch_time_s - 1) for m in ms]
    assert max(errors) > 0.05


def test_one_batch_per_node_folds_the_step_cost_into_the_row_time():
    known = truth()
    fitted = fit_perf_model("bigdl", synthetic(known, (1, 2, 4), (1000,)), PARAM_BYTES)
    assert fitted.batch_per_node == 1000
    assert fitted.step_time_s == 0.0
    assert fitted.row_time_s == pytest.approx(known.row_time_s + known.step_time_s / 1000,
                                              rel=0.03)
    assert "folded" in fitted.notes[0]
    with pytest.raises(ValueError, match="fitted at 1000 rows per node"):
        fitted.epoch_time_s(10_000, nodes=2, batch_per_node=500)


def test_without_multi_node_runs_the_peer_cost_is_unknown_and_said_so():
    fitted = fit_perf_model("horovod", synthetic(truth(), (1,), (500, 1000)), PARAM_BYTES)
    assert fitted.peer_step_time_s == 0.0
    assert any("no multi-node run" in note for note in fitted.notes)


def test_ring_allreduce_volume_and_latency():
    net = Network(bandwidth_gbps=8.0, latency_s=1e-4)
    assert ring_allreduce_s(1, 1e6, net) == 0.0
    # N=2: 2*(1)/2 * 1 MB = 1 MB = 8e6 bit at 8 Gbit/s = 1 ms, plus 2 messages of 0.1 ms
    assert ring_allreduce_s(2, 1e6, net) == pytest.approx(1.2e-3)
    # the volume saturates at 2 x P; the latency term grows linearly
    assert ring_allreduce_s(64, 1e6, net) == pytest.approx(2 * 63 / 64 * 1e-3 + 126e-4)


def test_efficiency_and_gain_per_added_node():
    model = truth()
    assert model.efficiency(1_000_000, 1, 1000) == pytest.approx(1.0)
    effs = [model.efficiency(1_000_000, n, 1000) for n in (2, 4, 8, 16)]
    assert all(later < earlier for earlier, later in zip(effs, effs[1:]))
    assert gain_per_added_node([10.0, 5.0, 4.0]) == pytest.approx([1.0, 0.25])


def test_fit_needs_measurements():
    with pytest.raises(ValueError, match="no measured runs"):
        fit_perf_model("bigdl", [], PARAM_BYTES)
