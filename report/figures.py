"""The report's figures, drawn with matplotlib (Agg, no screen) and saved as PNG."""
from __future__ import annotations

from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

from .convergence import Convergence  # noqa: E402
from .model import Study, Trial  # noqa: E402
from .surrogate import Surface  # noqa: E402

DPI = 100


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    fig.savefig(path, dpi=DPI)
    plt.close(fig)
    return path


def convergence_figure(c: Convergence, metric: str, path: Path) -> Path:
    """Distance between consecutive proposals, and the best value so far (thesis figure 4.6)."""
    fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.6))
    if c.distances:
        left.plot(range(len(c.distances)), c.distances, "-o", color="tab:red")
    left.set(title="Distance between consecutive proposals", xlabel="iteration i (from i to i+1)",
             ylabel="Euclidean distance (unit cube)")
    xs = [i for i, b in zip(c.iterations, c.best_so_far) if b is not None]
    right.plot(xs, [b for b in c.best_so_far if b is not None], "-o", color="tab:blue")
    right.set(title=f"Best {metric} so far", xlabel="iteration (trial in phase)", ylabel=metric)
    for ax in (left, right):
        ax.grid(alpha=0.3)
    fig.suptitle(f"Convergence — phase {c.phase}")
    return _save(fig, path)


def _label(v: Any) -> str:
    return f"{v:.4g}" if isinstance(v, float) else str(v)


def surrogate_figure(s: Surface, metric: str, path: Path) -> Path:
    """1-D: mean with a ±2σ band, observations, EI and its maximum. 2-D: mean, σ and EI maps."""
    if len(s.names) == 1:
        return _surrogate_1d(s, metric, path)
    return _surrogate_2d(s, metric, path)


def _positions(axis: list[Any]) -> tuple[np.ndarray, list[str] | None]:
    if all(isinstance(v, str) for v in axis):
        return np.arange(len(axis), dtype=float), list(axis)
    return np.asarray(axis, dtype=float), None


def _surrogate_1d(s: Surface, metric: str, path: Path) -> Path:
    x, ticks = _positions(s.axes[0])
    fig, (top, bottom) = plt.subplots(2, 1, figsize=(9, 6), sharex=True, height_ratios=(2, 1))
    top.plot(x, s.mean, color="black", label="posterior mean")
    top.fill_between(x, s.mean - 2 * s.std, s.mean + 2 * s.std, color="grey", alpha=0.3, label="±2 std")
    ox = [ticks.index(p[0]) if ticks else float(p[0]) for p, _ in s.observed]
    top.plot(ox, [v for _, v in s.observed], "o", color="tab:red", label="observations")
    nx = ticks.index(s.next_point[0]) if ticks else float(s.next_point[0])
    for ax in (top, bottom):
        ax.axvline(nx, color="tab:red", linestyle="--", linewidth=1)
        ax.grid(alpha=0.3)
    top.set(ylabel=metric, title=f"GP surrogate — phase {s.phase}")
    top.legend(loc="best", fontsize=8)
    bottom.plot(x, s.ei, color="tab:red")
    bottom.ticklabel_format(axis="y", useOffset=False)
    bottom.set(xlabel=s.names[0], ylabel="expected improvement",
               title=f"Acquisition (EI); largest at {s.names[0]} = {_label(s.next_point[0])}")
    if ticks:
        bottom.set_xticks(x, ticks, rotation=30, ha="right")
    if s.log_scale[0]:
        bottom.set_xscale("log")
    return _save(fig, path)


def _surrogate_2d(s: Surface, metric: str, path: Path) -> Path:
    (x, xt), (y, yt) = _positions(s.axes[0]), _positions(s.axes[1])
    fig, axes = plt.subplots(1, 3, figsize=(15, 4.4))
    for ax, grid, title in zip(axes, (s.mean, s.std, s.ei),
                               (f"posterior mean of {metric}", "posterior std", "expected improvement")):
        im = ax.pcolormesh(y, x, grid, shading="nearest", cmap="viridis")
        bar = fig.colorbar(im, ax=ax)
        bar.formatter.set_useOffset(False)  # a nearly flat surface would otherwise read "1e-10 + 0.457"
        bar.update_ticks()
        ox = [xt.index(p[0]) if xt else float(p[0]) for p, _ in s.observed]
        oy = [yt.index(p[1]) if yt else float(p[1]) for p, _ in s.observed]
        ax.plot(oy, ox, "o", color="tab:red", markersize=4)
        nx = xt.index(s.next_point[0]) if xt else float(s.next_point[0])
        ny = yt.index(s.next_point[1]) if yt else float(s.next_point[1])
        ax.plot([ny], [nx], "*", color="white", markeredgecolor="black", markersize=12)
        ax.set(title=title, xlabel=s.names[1], ylabel=s.names[0])
        if xt:
            ax.set_yticks(x, xt)
        if yt:
            ax.set_xticks(y, yt, rotation=30, ha="right")
        if s.log_scale[0]:
            ax.set_yscale("log")
        if s.log_scale[1]:
            ax.set_xscale("log")
    fig.suptitle(f"GP surrogate — phase {s.phase} (red: observations, star: largest EI)")
    return _save(fig, path)


def _curve(t: Trial, metric: str) -> list[tuple[int, float, float]]:
    """(epoch across steps, time, value) of the counting attempt, in step order."""
    order = list(t.step_limits())
    ms = sorted(t.final_measurements(), key=lambda m: (order.index(m.step) if m.step in order else 99, m.epoch))
    return [(i, m.time, m.metrics[metric]) for i, m in enumerate(ms) if metric in m.metrics]


def curves_by_epoch(study: Study, metric: str, path: Path) -> Path:
    """One line per trial: the metric per epoch, both steps in a row (thesis figures 4.1, 4.3, 4.5)."""
    fig, ax = plt.subplots(figsize=(10, 5))
    for t in sorted(study.trials, key=lambda t: t.number):
        pts = _curve(t, metric)
        if pts:
            ax.plot([p[0] for p in pts], [p[2] for p in pts], "-", marker=".", linewidth=1,
                    label=f"{t.number}" if len(study.trials) <= 20 else None)
    ax.set(xlabel="epoch (classification block, then fine-tuning)", ylabel=metric,
           title=f"{metric} per epoch, one line per trial")
    ax.grid(alpha=0.3)
    if 0 < len(study.trials) <= 20:
        ax.legend(title="trial", fontsize=7, ncol=2, loc="best")
    return _save(fig, path)


def curves_by_time(study: Study, metric: str, path: Path) -> Path:
    """The same lines against wall-clock time, each phase's span marked (thesis figures 4.2, 4.4)."""
    fig, ax = plt.subplots(figsize=(10, 5))
    t0 = min([t.started for t in study.trials if t.started] or [study.created])
    colors = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for p in study.phases:
        trials = [t for t in study.trials if t.phase == p.index and t.started]
        if not trials:
            continue
        start = min(t.started for t in trials) - t0
        end = max((t.ended or study.read_at) for t in trials) - t0
        ax.axvspan(start / 60, end / 60, color=colors[p.index % len(colors)], alpha=0.08)
        ax.axvline(start / 60, color="black", linestyle=":", linewidth=1)
        ax.text(start / 60, 1.01, f" {p.name}", transform=ax.get_xaxis_transform(), fontsize=9, va="bottom")
    for t in sorted(study.trials, key=lambda t: t.number):
        pts = _curve(t, metric)
        if pts:
            ax.plot([(p[1] - t0) / 60 for p in pts], [p[2] for p in pts], "-", marker=".", linewidth=1,
                    color=colors[t.phase % len(colors)])
    ax.set(xlabel="wall-clock minutes since the first trial started", ylabel=metric)
    ax.set_title(f"{metric} over time; phases shaded and separated by dotted lines", pad=18)
    ax.grid(alpha=0.3)
    return _save(fig, path)


def confusion_figure(matrix: list[list[int]], classes: list[str], title: str, path: Path) -> Path:
    """Confusion matrix with counts (thesis figures 4.26, 4.30); rows true, columns predicted."""
    cm = np.asarray(matrix)
    n = len(classes)
    size = max(4.5, 0.6 * n + 2.5)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(cm, cmap="Blues")
    fig.colorbar(im, ax=ax)
    for i in range(n):
        for j in range(n):
            ax.text(j, i, str(cm[i, j]), ha="center", va="center",
                    color="white" if cm[i, j] > cm.max() / 2 else "black", fontsize=9)
    ax.set_xticks(range(n), classes, rotation=45, ha="right")
    ax.set_yticks(range(n), classes)
    ax.set(xlabel="predicted label", ylabel="true label", title=title)
    return _save(fig, path)


def time_figure(rows: list[dict[str, Any]], path: Path) -> Path:
    """Per phase: worker-minutes spent and the minutes the stopping rules saved."""
    phases = rows[:-1]
    fig, ax = plt.subplots(figsize=(8, 3.8))
    x = np.arange(len(phases))
    ax.bar(x - 0.25, [r["worker_s"] / 60 for r in phases], 0.25, label="worker-minutes spent")
    ax.bar(x, [r["saved_s_early_stopping"] / 60 for r in phases], 0.25, label="saved by early stopping")
    ax.bar(x + 0.25, [r["saved_s_nonconvergence"] / 60 for r in phases], 0.25,
           label="saved by nonconvergence filtering")
    ax.set_xticks(x, [r["phase"] for r in phases])
    ax.set(ylabel="minutes", title="Compute per phase")
    ax.legend(fontsize=8)
    ax.grid(alpha=0.3, axis="y")
    return _save(fig, path)
