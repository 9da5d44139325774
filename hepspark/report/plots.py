"""PNG plots of a trained classifier, as the HIGGS study shows them.

Each function takes plain data or the results of :mod:`hepspark.metrics` and an output
path, writes a PNG atomically (to ``path + '.tmp'``, then ``os.replace``, so that nobody
ever opens a half-written plot), creates the parent folder if needed, and returns the path.

Figures are drawn through matplotlib's object-oriented API on an Agg canvas, never through
``pyplot``: no display is needed, the caller's backend is left alone, and a long-running
Spark driver does not accumulate open figures.

Example:
    >>> from hepspark import metrics
    >>> roc = metrics.roc_curve([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8])
    >>> plot_roc(roc, "/tmp/hepspark-roc.png", label="DNN")
    '/tmp/hepspark-roc.png'
"""
from __future__ import annotations

import contextlib
import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from hepspark.metrics import DiscoverySignificance, FomCurve, RocCurve, ScoreHistograms

DPI = 120
WIDTH_IN = 7.0


def _figure(
    nrows: int = 1, height_in: float = 5.0, height_ratios: Sequence[float] | None = None
) -> tuple[Figure, list[Axes]]:
    fig = Figure(figsize=(WIDTH_IN, height_in), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    axes = fig.subplots(nrows, 1, sharex=True, squeeze=False, height_ratios=height_ratios)
    for ax in axes[:, 0]:
        ax.grid(True, alpha=0.35)
    return fig, list(axes[:, 0])


def _legend(ax: Axes, **kwargs) -> None:
    # Only when something is labelled: an empty legend() call warns.
    if ax.get_legend_handles_labels()[0]:
        ax.legend(**kwargs)


def _save(fig: Figure, path: str | os.PathLike[str]) -> str:
    path = os.fspath(path)
    parent = os.path.dirname(path)
    if parent:
        os.makedirs(parent, exist_ok=True)
    tmp = path + ".tmp"
    try:
        fig.savefig(tmp, format="png", dpi=DPI)  # format given: the .tmp suffix says nothing
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.remove(tmp)
        raise
    return path


# ------------------------------------------------------------------------------ ROC


def plot_rocs(
    rocs: Mapping[str, RocCurve],
    path: str | os.PathLike[str],
    reference_auc: float | None = None,
) -> str:
    """ROC curves in the HEP style: background rejection 1/ε_B (log) vs signal efficiency ε_S.

    Points with no background passing (ε_B = 0, infinite rejection) cannot be drawn and
    are left out. ``reference_auc`` (e.g. the published 0.885 of the HIGGS DNN) is written
    on the plot for comparison.

    Example:
        >>> plot_rocs({"DNN": roc_dnn, "shallow NN": roc_snn}, "out/roc.png")  # doctest: +SKIP
        'out/roc.png'
    """
    if not rocs:
        raise ValueError("rocs is empty: give at least one {label: RocCurve}")
    fig, (ax,) = _figure()
    for label, roc in rocs.items():
        drawable = roc.fpr > 0
        ax.plot(
            roc.tpr[drawable], 1.0 / roc.fpr[drawable], lw=1.8, label=f"{label} (AUC = {roc.auc:.4f})"
        )
    # A random classifier keeps the same fraction of signal and background: ε_B = ε_S.
    efficiency = np.linspace(0.01, 1.0, 200)
    ax.plot(efficiency, 1.0 / efficiency, ls="--", color="grey", label="random (AUC = 0.5)")
    if reference_auc is not None:
        ax.text(
            0.03, 0.04, f"reference AUC = {reference_auc:.3f}", transform=ax.transAxes,
            bbox={"boxstyle": "round", "facecolor": "white", "alpha": 0.8},
        )
    ax.set_yscale("log")
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(bottom=1.0)
    ax.grid(True, which="minor", alpha=0.15)
    ax.set_xlabel(r"Signal efficiency $\varepsilon_S$ (true positive rate)")
    ax.set_ylabel(r"Background rejection $1/\varepsilon_B$")
    ax.set_title("ROC curve")
    _legend(ax, loc="upper right")
    return _save(fig, path)


def plot_roc(
    roc: RocCurve,
    path: str | os.PathLike[str],
    label: str | None = None,
    reference_auc: float | None = None,
) -> str:
    """One ROC curve; see :func:`plot_rocs`.

    Example:
        >>> plot_roc(metrics.roc_curve(y, score), "out/roc.png", label="DNN")  # doctest: +SKIP
        'out/roc.png'
    """
    return plot_rocs({label or "classifier": roc}, path, reference_auc=reference_auc)


# ---------------------------------------------------------------------- FOM = S/√B


def plot_fom(
    fom: FomCurve,
    path: str | os.PathLike[str],
    significance: DiscoverySignificance | None = None,
) -> str:
    """S/√B against the cut, best cut marked; below it, the S and B passing each cut.

    ``significance`` (from :func:`hepspark.metrics.discovery_significance`) adds its value
    and its cut to the plot.

    Example:
        >>> plot_fom(metrics.fom_curve(y, score), "out/fom.png")  # doctest: +SKIP
        'out/fom.png'
    """
    fig, (top, bottom) = _figure(2, height_in=6.5, height_ratios=[2, 1])
    top.plot(fom.cuts, fom.fom, lw=1.8, color="C0", label="S/√B")
    if np.isfinite(fom.best_fom):
        top.axvline(fom.best_cut, ls="--", color="C3", lw=1)
        bottom.axvline(fom.best_cut, ls="--", color="C3", lw=1)
        top.plot(
            fom.best_cut, fom.best_fom, "*", ms=14, color="C3",
            label=f"best: S/√B = {fom.best_fom:.3g} at score ≥ {fom.best_cut:.3f}",
        )
    else:
        top.text(
            0.5, 0.5, "S/√B undefined at every cut (too little background)",
            transform=top.transAxes, ha="center", va="center",
        )
    if significance is not None and np.isfinite(significance.significance):
        label = (
            f"discovery significance {significance.significance:.2f} σ at score ≥ "
            f"{significance.best_cut:.3f}\n(renormalized: S = {significance.signal_kept:.1f}, "
            f"B = {significance.background_kept:.1f} events)"
        )
        top.axvline(significance.best_cut, ls=":", color="C2", lw=1.8, label=label)
        bottom.axvline(significance.best_cut, ls=":", color="C2", lw=1.8)
    top.set_ylabel("S/√B")
    top.set_title("Figure of merit vs cut on the classifier score")
    _legend(top, loc="best", fontsize="small")

    bottom.plot(fom.cuts, fom.signal, color="C3", label="signal S")
    bottom.plot(fom.cuts, fom.background, color="C0", label="background B")
    bottom.set_yscale("log")  # B falls by orders of magnitude towards tight cuts
    bottom.set_ylabel("Events passing")
    bottom.set_xlabel("Cut on classifier score (events with score ≥ cut kept)")
    _legend(bottom, loc="lower left", fontsize="small")
    return _save(fig, path)


# ----------------------------------------------------------------------- histograms


def plot_score_histograms(
    h: ScoreHistograms, path: str | os.PathLike[str], log_y: bool = False
) -> str:
    """Normalized score distributions of signal and background, as step histograms.

    ``log_y`` shows the tails, where the tight cuts of a search live.

    Example:
        >>> plot_score_histograms(metrics.score_histograms(y, score), "out/s.png")  # doctest: +SKIP
        'out/s.png'
    """
    fig, (ax,) = _figure()
    for density, counts, name, color in (
        (h.background, h.background_counts, "background", "C0"),
        (h.signal, h.signal_counts, "signal", "C3"),
    ):
        ax.stairs(density, h.edges, color=color, lw=1.8, label=f"{name} ({counts.sum():,.0f} events)")
        ax.stairs(density, h.edges, color=color, fill=True, alpha=0.15)
    ax.set_xlim(h.edges[0], h.edges[-1])
    # Headroom above the peaks keeps the legend off the histograms.
    if log_y:
        ax.set_yscale("log")
        ax.set_ylim(top=ax.get_ylim()[1] * 5)
    else:
        ax.set_ylim(0.0, ax.get_ylim()[1] * 1.2)
    ax.set_xlabel("Classifier score")
    ax.set_ylabel("Probability density [1/unit score]")
    ax.set_title("Classifier score: signal vs background (unit area)")
    _legend(ax, loc="upper center")
    return _save(fig, path)


# ------------------------------------------------------------------------- training


def _series(
    epochs: Sequence[Mapping[str, float | int | None]], key: str
) -> tuple[np.ndarray, np.ndarray]:
    """(epoch, value) of the records holding a finite ``key``; the epoch defaults to 1, 2, ..."""
    points = [
        (record.get("epoch") if record.get("epoch") is not None else position, record.get(key))
        for position, record in enumerate(epochs, start=1)
    ]
    points = [(e, v) for e, v in points if v is not None and np.isfinite(v)]
    return np.array([e for e, _ in points], float), np.array([v for _, v in points], float)


def plot_training_curves(
    epochs: Sequence[Mapping[str, float | int | None]],
    path: str | os.PathLike[str],
    metric: str = "auc",
) -> str:
    """Loss (train and validation) and AUC (or ``metric``, e.g. ``accuracy``) against the
    epoch, in two panels.

    Each record may hold ``epoch``, ``train_loss``, ``val_loss``, ``val_<metric>`` and
    ``train_<metric>``; a missing, None or non-finite value is simply not drawn. The epoch
    of the best validation value is marked.

    Example:
        >>> history = [{"epoch": 1, "train_loss": 0.65, "val_loss": 0.62, "val_auc": 0.74},
        ...            {"epoch": 2, "train_loss": 0.58, "val_loss": 0.57, "val_auc": 0.79}]
        >>> plot_training_curves(history, "out/training.png")  # doctest: +SKIP
        'out/training.png'
    """
    if not epochs:
        raise ValueError("epochs is empty: give one record (dict) per epoch")
    fig, (loss_ax, auc_ax) = _figure(2, height_in=6.5)
    label = "AUC" if metric == "auc" else metric
    panels = (
        (loss_ax, (("train_loss", "training", "o-"), ("val_loss", "validation", "s-")), "loss"),
        (auc_ax, ((f"train_{metric}", "training", "o-"), (f"val_{metric}", "validation", "s-")),
         label),
    )
    for ax, curves, quantity in panels:
        drawn = False
        for key, name, style in curves:
            x, y = _series(epochs, key)
            if x.size:
                ax.plot(x, y, style, ms=4, lw=1.5, label=f"{name} {quantity}")
                drawn = True
        if not drawn:
            ax.text(0.5, 0.5, f"no {quantity} recorded", transform=ax.transAxes, ha="center")
    x, auc = _series(epochs, f"val_{metric}")
    if auc.size:
        best = int(np.argmax(auc))
        auc_ax.plot(
            x[best], auc[best], "*", ms=14, color="C3",
            label=f"best validation {label} = {auc[best]:.4f} (epoch {x[best]:g})",
        )
    loss_ax.set_ylabel("Loss (mean per event)")
    loss_ax.set_title("Training history")
    auc_ax.set_ylabel(label)
    auc_ax.set_xlabel("Epoch")
    auc_ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    _legend(loss_ax, loc="upper right")
    _legend(auc_ax, loc="lower right")
    return _save(fig, path)


# ---------------------------------------------------------------------- K classes


def plot_confusion_matrix(
    counts: np.ndarray, class_names: Sequence[str], path: str | os.PathLike[str]
) -> str:
    """Row-normalized confusion matrix (true class per row), each cell annotated with its
    fraction and count."""
    counts = np.asarray(counts)
    totals = counts.sum(axis=1, keepdims=True)
    fractions = np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)
    fig = Figure(figsize=(WIDTH_IN, WIDTH_IN * 0.85), dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    for i in range(counts.shape[0]):
        for j in range(counts.shape[1]):
            ax.text(j, i, f"{fractions[i, j]:.2f}\n({counts[i, j]:,d})", ha="center",
                    va="center", fontsize="small",
                    color="white" if fractions[i, j] > 0.6 else "black")
    ticks = np.arange(len(class_names))
    ax.set_xticks(ticks, labels=list(class_names), rotation=30)
    ax.set_yticks(ticks, labels=list(class_names))
    ax.set_xlabel("Predicted class")
    ax.set_ylabel("True class")
    ax.set_title("Confusion matrix (test sample)")
    return _save(fig, path)


def plot_efficiency_purity(curves, path: str | os.PathLike[str]) -> str:
    """Purity against efficiency for each class (cutting on that class's probability),
    as in the MicroBooNE architecture study; ``curves`` from
    :func:`hepspark.multiclass.efficiency_purity`."""
    fig, (ax,) = _figure()
    for curve in curves:
        ok = np.isfinite(curve.purity)
        ax.plot(curve.efficiency[ok], curve.purity[ok], lw=1.8, label=curve.name)
    ax.set_xlim(0.0, 1.0)
    ax.set_ylim(0.0, 1.02)
    ax.set_xlabel("Efficiency (fraction of the class selected)")
    ax.set_ylabel("Purity (fraction of the selection in the class)")
    ax.set_title("Efficiency vs purity per class")
    _legend(ax, loc="lower left")
    return _save(fig, path)
