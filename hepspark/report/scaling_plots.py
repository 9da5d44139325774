"""PNG plots of the scaling study, drawn from plain numbers (see :mod:`.scaling`).

Series are ``{(backend, optimizer): [(nodes, value), ...]}``: the colour is the optimizer,
the line style and marker the backend, so ten curves stay readable on one axis. Horizontal
baselines are ``{label: value}``. Written atomically like every hepspark plot.

>>> plot_epoch_time({("horovod", "adam"): [(1, 3.0), (2, 1.9)]}, {"Keras CPU": 2.5},
...                 "out/epoch_time.png")  # doctest: +SKIP
'out/epoch_time.png'
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence

import numpy as np
from matplotlib.ticker import MaxNLocator

from hepspark.report.plots import _figure, _legend, _save

Series = Mapping[tuple[str, str], Sequence[tuple[float, float]]]
_STYLE = {"bigdl": ("-", "o"), "horovod": ("--", "s"), "torch": ("-.", "D"),
          "keras": (":", "^")}
_BASELINE_COLORS = ("0.35", "C7", "C9", "C8")


def _color(optimizer: str, optimizers: list[str]) -> str:
    return f"C{optimizers.index(optimizer) % 10}"


def _draw(ax, series: Series) -> None:
    optimizers = sorted({o for _, o in series})
    for (backend, optimizer), points in sorted(series.items()):
        if not points:
            continue
        x, y = zip(*sorted(points))
        style, marker = _STYLE.get(backend, ("-.", "D"))
        ax.plot(x, y, ls=style, marker=marker, ms=6, lw=1.6,
                color=_color(optimizer, optimizers), label=f"{backend} {optimizer}")


def _nodes_axis(ax, series: Series) -> None:
    nodes = sorted({n for points in series.values() for n, _ in points})
    if nodes:
        ax.set_xticks(nodes)
        ax.set_xlim(min(nodes) - 0.3, max(nodes) + 0.3)
    ax.set_xlabel("Executors (nodes)")


def _baselines(ax, baselines: Mapping[str, float]) -> None:
    for i, (label, value) in enumerate(baselines.items()):
        if value is not None and np.isfinite(value):
            ax.axhline(value, ls="-.", lw=1.4, color=_BASELINE_COLORS[i % len(_BASELINE_COLORS)],
                       label=label)


def plot_epoch_time(series: Series, baselines: Mapping[str, float],
                    path: str | os.PathLike[str], rows: int | None = None) -> str:
    """Epoch wall time against executors; Keras CPU/GPU baselines as horizontal lines."""
    return _seconds_vs_nodes(series, baselines, path, "Epoch wall time [s]",
                             "Epoch wall time vs executors"
                             + (f" ({rows:,d} training rows)" if rows else ""))


def plot_time_to_target(series: Series, baselines: Mapping[str, float],
                        path: str | os.PathLike[str], target: str) -> str:
    """Training time until the validation quality first reached ``target`` (e.g. "val
    AUC 0.78") against executors; runs that never reached it are absent."""
    return _seconds_vs_nodes(series, baselines, path, f"Training time to {target} [s]",
                             f"Time to target quality ({target})")


def plot_rate(series: Series, baselines: Mapping[str, float], path: str | os.PathLike[str],
              unit: str = "images", title: str = "Training rate vs executors") -> str:
    """Training rate (``unit`` per second over all nodes) against executors; the
    single-process baselines as horizontal lines."""
    return _seconds_vs_nodes(series, baselines, path, f"Training rate [{unit}/s]", title)


def _seconds_vs_nodes(series: Series, baselines: Mapping[str, float],
                      path: str | os.PathLike[str], ylabel: str, title: str) -> str:
    fig, (ax,) = _figure()
    _draw(ax, series)
    _baselines(ax, baselines)
    _nodes_axis(ax, series)
    ax.set_ylim(bottom=0)
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    _legend(ax, fontsize="small", ncol=2)
    return _save(fig, path)


def plot_relative_time(series: Series, path: str | os.PathLike[str],
                       seed_gain: tuple[float, float] = (0.30, 0.40)) -> str:
    """T(N)/T(1) with the ideal 1/N and the seed study's 30-40 % gain per added node."""
    fig, (ax,) = _figure()
    nodes = np.array(sorted({n for points in series.values() for n, _ in points} | {1}), float)
    grid = np.linspace(1, max(nodes.max(), 2), 100)
    ax.plot(grid, 1 / grid, color="k", lw=1, label="ideal 1/N")
    low, high = seed_gain
    ax.fill_between(grid, (1 + high) ** -(grid - 1), (1 + low) ** -(grid - 1), color="C1",
                    alpha=0.15, label=f"seed 004: {low:.0%}–{high:.0%} gain per added node")
    _draw(ax, series)
    _nodes_axis(ax, series)
    ax.set_ylim(0, 1.3)
    ax.set_ylabel("Epoch time relative to 1 executor")
    ax.set_title("Relative epoch time T(N) / T(1)")
    _legend(ax, fontsize="small", ncol=2)
    return _save(fig, path)


def plot_efficiency(series: Series, path: str | os.PathLike[str]) -> str:
    """Parallel efficiency T(1) / (N T(N)); 1 is perfect scaling."""
    fig, (ax,) = _figure()
    ax.axhline(1.0, color="k", lw=1, label="ideal")
    _draw(ax, series)
    _nodes_axis(ax, series)
    ax.set_ylim(0, 1.2)
    ax.set_ylabel("Parallel efficiency T(1) / (N · T(N))")
    ax.set_title("Parallel efficiency")
    _legend(ax, fontsize="small", ncol=2)
    return _save(fig, path)


def plot_bars(labels: Sequence[str], values: Sequence[float], path: str | os.PathLike[str],
              xlabel: str, title: str, reference: tuple[str, float] | None = None,
              second: tuple[str, Sequence[float | None]] | None = None,
              percent: bool = False) -> str:
    """Horizontal bars, one per run (e.g. AUC or fraction of the FLOP ceiling)."""
    height = max(3.0, 0.32 * len(labels) + 1.5)
    fig, (ax,) = _figure(height_in=height)
    y = np.arange(len(labels))
    bar = 0.38 if second else 0.7
    ax.barh(y - (bar / 2 if second else 0), values, height=bar, color="C0",
            label=xlabel if second else None)
    if second:
        name, other = second
        ax.barh(y + bar / 2, [np.nan if v is None else v for v in other], height=bar,
                color="C3", label=name)
    for yi, v in zip(y, values):
        if v is not None and np.isfinite(v):
            ax.text(v, yi - (bar / 2 if second else 0), f" {v:.1%}" if percent else f" {v:.4f}",
                    va="center", fontsize="small")
    if reference:
        ax.axvline(reference[1], color="k", ls="--", lw=1, label=reference[0])
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    finite = [v for v in [*values, *(second[1] if second else [])]
              if v is not None and np.isfinite(v)]
    if finite and not percent:  # AUCs: zoom on the range where they differ
        ax.set_xlim(max(0.0, min(finite) - 0.05), min(1.0, max(finite) + 0.03))
    elif finite:
        ax.set_xlim(0, max(finite) * 1.25)
        ax.xaxis.set_major_formatter(lambda v, _: f"{v:.0%}")
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    _legend(ax, fontsize="small", loc="lower right")
    return _save(fig, path)


def plot_prediction(predicted: Mapping[str, Sequence[tuple[int, float, float]]],
                    measured: Mapping[str, Sequence[tuple[int, float]]],
                    baselines: Mapping[str, float], path: str | os.PathLike[str],
                    rows: int) -> str:
    """Predicted epoch time (top) and efficiency (bottom) to many nodes, per backend.

    ``predicted[backend]`` holds (nodes, seconds, efficiency); ``measured[backend]`` the
    measured (nodes, seconds) scaled to the same rows.
    """
    fig, (top, bottom) = _figure(2, height_in=7.5, height_ratios=[3, 2])
    backends = sorted({name.split(",")[0] for name in predicted})
    for name, points in sorted(predicted.items()):
        backend = name.split(",")[0]
        color, style = f"C{backends.index(backend)}", "--" if "," in name else "-"
        n, t, eff = (np.array(v, float) for v in zip(*points))
        top.plot(n, t, color=color, ls=style, lw=1.8, label=f"{name}: model")
        bottom.plot(n, eff, color=color, ls=style, lw=1.8, label=name)
        if measured.get(name):
            mn, mt = zip(*measured[name])
            top.plot(mn, mt, "o", color=color, ms=7, mfc="none", label=f"{name}: measured")
    _baselines(top, baselines)
    top.set_xscale("log", base=2)
    top.set_yscale("log")
    top.set_ylabel("Epoch wall time [s]")
    top.set_title(f"Predicted epoch of {rows:,d} rows vs nodes")
    top.grid(True, which="minor", alpha=0.15)
    _legend(top, fontsize="small")
    bottom.axhline(1.0, color="k", lw=1)
    bottom.set_ylim(0, 1.05)
    bottom.set_xlabel("Nodes")
    bottom.set_ylabel("Parallel efficiency")
    bottom.xaxis.set_major_locator(MaxNLocator(integer=True))
    bottom.set_xticks([1, 2, 4, 8, 16, 32, 64])
    bottom.get_xaxis().set_major_formatter(lambda v, _: f"{v:g}")
    _legend(bottom, fontsize="small")
    return _save(fig, path)


def plot_fit(points: Mapping[str, Sequence[tuple[float, float]]],
             path: str | os.PathLike[str]) -> str:
    """Model vs measured epoch time of the measured runs, on the y = x diagonal."""
    fig, (ax,) = _figure(height_in=5.5)
    values = [v for pts in points.values() for p in pts for v in p]
    if values:
        lo, hi = min(values) * 0.8, max(values) * 1.2
        ax.plot([lo, hi], [lo, hi], color="k", lw=1, label="model = measured")
        ax.fill_between([lo, hi], [lo * 0.9, hi * 0.9], [lo * 1.1, hi * 1.1], color="0.5",
                        alpha=0.15, label="±10 %")
        ax.set_xlim(lo, hi)
        ax.set_ylim(lo, hi)
    for i, (backend, pts) in enumerate(sorted(points.items())):
        if pts:
            measured, model = zip(*pts)
            ax.plot(measured, model, "o", color=f"C{i}", label=backend)
    ax.set_xlabel("Measured epoch time [s]")
    ax.set_ylabel("Model epoch time [s]")
    ax.set_title("Performance model vs measurement")
    _legend(ax, fontsize="small", loc="upper left")
    return _save(fig, path)
