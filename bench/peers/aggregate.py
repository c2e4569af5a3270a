"""Tables and plots of the peer benchmark from its raw results (bench/results/peers.jsonl).

    .venv/bin/python bench/peers/aggregate.py [--results ...] [--docs docs/BENCHMARKS.md]

Writes bench/results/peers.md and docs/bench_peers_*.png, and replaces the text between
``<!-- peers:begin -->`` and ``<!-- peers:end -->`` in docs/BENCHMARKS.md with the same tables, so
the numbers in the docs are the command's. Values are in each task's own units (accuracy up, losses
down). Paired comparisons use the seeds both tuners ran; a tie is a difference below 1e-9 of the
task's value range; the p-value is Wilcoxon's signed-rank test (two-sided).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from collections import defaultdict
from pathlib import Path

import numpy as np
import scipy.stats

sys.path.insert(0, os.path.dirname(__file__))
from tasks import TASKS  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
DEFAULT = "saga-gp"
ORDER = ("saga-gp", "saga-gpyopt", "saga-random", "optuna-tpe", "optuna-gp", "kt-bo", "kt-random", "random")
CHECKPOINTS = (10, 20, 30, 50)


def load(path: Path) -> dict[tuple[str, int, str], dict[int, np.ndarray]]:
    """(task, in_flight, tuner) -> seed -> its run; of a seed run twice (to 32, then on to 64
    evaluations) the longer run: runs are deterministic per seed, so its first evaluations are the
    shorter one's, up to floating-point rounding."""
    runs: dict = defaultdict(dict)
    for line in path.read_text().splitlines():
        try:
            r = json.loads(line)
        except json.JSONDecodeError:
            continue
        seeds = runs[(r["task"], r["in_flight"], r["tuner"])]
        if len(r["losses"]) >= len(seeds.get(r["seed"], {}).get("losses", ())):
            seeds[r["seed"]] = r
    return runs


def best_so_far(r: dict) -> np.ndarray:
    return np.minimum.accumulate(np.array(r["losses"], dtype=float))


def fmt(task: str, loss: float) -> str:
    v = TASKS[task].sign * loss
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3g}"


def median_iqr(task: str, xs: np.ndarray) -> str:
    q1, med, q3 = np.percentile(xs, [25, 50, 75])
    lo, hi = sorted((TASKS[task].sign * q1, TASKS[task].sign * q3))
    return f"{fmt(task, med)} [{lo:.4g}, {hi:.4g}]"


def paired(a: dict[int, dict], b: dict[int, dict], at: int, scale: float) -> tuple[int, int, int, float, int]:
    seeds = sorted(set(a) & set(b))
    da = np.array([best_so_far(a[s])[at - 1] for s in seeds])
    db = np.array([best_so_far(b[s])[at - 1] for s in seeds])
    diff = db - da   # > 0: the first tuner (a) found a lower loss
    tol = 1e-9 * max(scale, 1e-12)
    wins, losses = int((diff > tol).sum()), int((diff < -tol).sum())
    ties = len(seeds) - wins - losses
    p = float(scipy.stats.wilcoxon(da, db).pvalue) if wins + losses >= 1 and len(seeds) >= 5 else float("nan")
    return wins, ties, losses, p, len(seeds)


def sequential_table(runs, task: str, lines: list[str]) -> None:
    lines += [f"**{TASKS[task].label}**" + (f" (optimum {fmt(task, TASKS[task].optimum)})" if TASKS[task].optimum is not None else ""),
              "", "| tuner | seeds | best at 10 | at 20 | at 30 | at 50 | CPU s per proposal (p50) | on a bound |",
              "|---|---|---|---|---|---|---|---|"]
    for tuner in ORDER:
        rs = runs.get((task, 1, tuner))
        if not rs:
            continue
        curves = np.array([best_so_far(r) for r in rs.values()])
        cells = [median_iqr(task, curves[:, c - 1]) if curves.shape[1] >= c else "" for c in CHECKPOINTS]
        cpu = np.median([np.median(r["proposal_cpu_s"]) for r in rs.values()])
        n_float = sum(d["type"] == "float" for d in TASKS[task].space.values())
        bound = sum(sum(r["at_bound"]) for r in rs.values()) / max(1, n_float * sum(len(r["losses"]) for r in rs.values()))
        lines.append(f"| {tuner} | {len(rs)} | " + " | ".join(cells) + f" | {cpu:.3f} | {bound:.0%} |")
    lines.append("")


def comparison_table(runs, tasks: list[str], q: int, at: int, lines: list[str]) -> dict[str, list]:
    peers = [t for t in ORDER if t != DEFAULT]
    lines += [f"| task | " + " | ".join(peers) + " |", "|---|" + "---|" * len(peers)]
    verdict: dict[str, list] = defaultdict(list)
    for task in tasks:
        mine = runs.get((task, q, DEFAULT))
        if not mine:
            continue
        allv = np.concatenate([r["losses"] for k, rs in runs.items() if k[0] == task for r in rs.values()])
        scale = float(np.ptp(allv)) if len(allv) else 1.0
        cells = []
        for peer in peers:
            theirs = runs.get((task, q, peer))
            if not theirs or not set(mine) & set(theirs):
                cells.append("")
                continue
            w, t, l, p, n = paired(mine, theirs, at, scale)
            mark = " **worse**" if p < 0.05 and l > w else (" better" if p < 0.05 and w > l else "")
            cells.append(f"{w}/{t}/{l} p={p:.2g}{mark}")
            verdict[peer].append((task, w, l, p))
        lines.append(f"| {task} | " + " | ".join(cells) + " |")
    lines.append("")
    return verdict


PARALLEL_CHECKS = ((4, 32), (16, 32), (16, 48), (16, 64))   # (in flight, evaluations) against sequential at 20


def parallel_vs_sequential(runs, tasks: list[str], lines: list[str], tuner: str = DEFAULT) -> None:
    head = [f"{q} in flight, best at {n}" for q, n in PARALLEL_CHECKS] + [f"{q}@{n} vs seq. W/T/L" for q, n in PARALLEL_CHECKS]
    lines += ["| task | sequential best at 20 | " + " | ".join(head) + " | random fallbacks (GP proposals) |",
              "|---|---|" + "---|" * len(head) + "---|"]
    for task in tasks:
        seq = runs.get((task, 1, tuner))
        if not seq or not any(runs.get((task, q, tuner)) for q, _ in PARALLEL_CHECKS):
            continue
        row = [median_iqr(task, np.array([best_so_far(r)[19] for r in seq.values()]))]
        cmp, fb = [], []
        for q, n in PARALLEL_CHECKS:
            par = {s: r for s, r in runs.get((task, q, tuner), {}).items() if len(r["losses"]) >= n}
            if not par:
                row.append("")
                cmp.append("")
                continue
            row.append(median_iqr(task, np.array([best_so_far(r)[n - 1] for r in par.values()])))
            seeds = sorted(set(par) & set(seq))
            a = np.array([best_so_far(par[s])[n - 1] for s in seeds])
            b = np.array([best_so_far(seq[s])[19] for s in seeds])
            cmp.append(f"{int((a < b).sum())}/{int((a == b).sum())}/{int((a > b).sum())}")
            if n == 32 and any("random_fallbacks" in r for r in par.values()):
                fb.append(f"q={q}: {sum(r.get('random_fallbacks', 0) for r in par.values())}")
        lines.append(f"| {task} | " + " | ".join(row + cmp) + " | " + ", ".join(fb) + " |")
    lines.append("")


def plots(runs, tasks: list[str], q: int, out: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    tasks = [t for t in tasks if any(runs.get((t, q, tuner)) for tuner in ORDER)]
    cols = 4
    rows = (len(tasks) + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.3 * rows), squeeze=False)
    for ax, task in zip(axes.ravel(), tasks):
        for tuner in ORDER:
            rs = runs.get((task, q, tuner))
            if not rs:
                continue
            c = TASKS[task].sign * np.array([best_so_far(r) for r in rs.values()])
            x = np.arange(1, c.shape[1] + 1)
            q1, med, q3 = np.percentile(c, [25, 50, 75], axis=0)
            style = dict(lw=2.2) if tuner == DEFAULT else dict(lw=1.1)
            ax.plot(x, med, label=f"{tuner} ({len(rs)})", **style)
            ax.fill_between(x, q1, q3, alpha=0.12)
        ax.set_title(task, fontsize=10)
        ax.set_xlabel("evaluations")
        if TASKS[task].sign > 0 and TASKS[task].optimum is not None and TASKS[task].optimum >= 0 or task == "branin":
            ax.set_yscale("log")   # positive losses spanning decades
    for ax in axes.ravel()[len(tasks):]:
        ax.axis("off")
    axes[0, 0].legend(fontsize=7)
    fig.suptitle(f"best so far, median and IQR over seeds ({q} in flight)", fontsize=11)
    fig.tight_layout()
    fig.savefig(out, dpi=80)
    plt.close(fig)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--results", default=str(ROOT / "bench" / "results" / "peers.jsonl"))
    ap.add_argument("--docs", default=str(ROOT / "docs" / "BENCHMARKS.md"))
    args = ap.parse_args()
    runs = load(Path(args.results))
    tasks = [t for t in TASKS if any(k[0] == t for k in runs)]
    lines = ["### Sequential: best so far (median [IQR] over seeds)", ""]
    for task in tasks:
        sequential_table(runs, task, lines)
    lines += [f"### {DEFAULT} against each tuner, paired by seed, at 30 evaluations (sequential)", "",
              "Wins/ties/losses of Saga's default, Wilcoxon p; **worse** / better: p < 0.05.", ""]
    verdict = comparison_table(runs, tasks, 1, 30, lines)
    for q in (4, 16):
        if any(k[1] == q for k in runs):
            lines += [f"### {q} trials in flight: {DEFAULT} against each tuner at 32 evaluations", ""]
            comparison_table(runs, tasks, q, 32, lines)
    lines += ["### Parallel against sequential (Saga's default)", "",
              "Each tuner against its own sequential run, paired by seed (W/T/L: the parallel run's best lower, "
              "equal, higher). With 16 in flight, every proposal up to the 32nd sees only the first 16 results.", ""]
    parallel_vs_sequential(runs, tasks, lines)
    lines += ["### Parallel against sequential (Optuna TPE, the same columns)", ""]
    parallel_vs_sequential(runs, tasks, lines, "optuna-tpe")
    worse = sorted({f"{peer} on {task}" for peer, v in verdict.items() for task, w, l, p in v if p < 0.05 and l > w})
    untested = [(peer, task) for peer, v in verdict.items() for task, _, _, p in v if p != p]
    pairs = sum(len(v) for v in verdict.values())
    untested_peers = sorted({peer for peer, _ in untested}, key=ORDER.index)
    tpe = verdict.get("optuna-tpe", [])
    fewest = min((len(rs) for k, rs in runs.items() if k[1] == 1 and k[2] == DEFAULT), default=0)
    lines += [f"Summary at 30 evaluations (a Wilcoxon test needs at least 5 paired seeds; p=nan: not tested; "
              f"fewest seeds of {DEFAULT} on a task: {fewest}): "
              f"significantly worse than a peer on: {', '.join(worse) or 'none'} "
              f"(not tested, too few paired seeds: {len(untested)} of {pairs} peer/task pairs"
              f"{', of ' + ', '.join(untested_peers) if untested_peers else ''}); "
              f"better than Optuna TPE (more wins than losses) on {sum(w > l for _, w, l, _ in tpe)} of {len(tpe)} tasks, "
              f"significantly on {sum(w > l and p < 0.05 for _, w, l, p in tpe)}.", ""]
    text = "\n".join(lines)
    (ROOT / "bench" / "results" / "peers.md").write_text(text + "\n")
    for q in (1, 4, 16):
        if any(k[1] == q for k in runs):
            plots(runs, tasks, q, ROOT / "docs" / f"bench_peers_q{q}.png")
    docs = Path(args.docs)
    body = docs.read_text()
    begin, end = "<!-- peers:begin -->", "<!-- peers:end -->"
    if begin in body and end in body:
        docs.write_text(body[: body.index(begin) + len(begin)] + "\n" + text + "\n" + body[body.index(end):])
    print(text)


if __name__ == "__main__":
    main()
