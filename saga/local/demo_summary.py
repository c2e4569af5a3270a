"""The demo's closing summary: the best parameters, validation and test metrics, per-frame latency
and throughput, and where the report and the model are; also written as summary.json."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

_SHOWN = ("accuracy", "macro_f1", "mcc")


def format_summary(results: dict[str, Any], elapsed_s: float) -> list[str]:
    study, model, video = results["study"], results["model"], results["video"]
    metrics = study["metrics"]
    params = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                       for k, v in sorted(study["parameters"].items()))
    lines = [
        "=" * 72,
        f"saga demo finished in {elapsed_s / 60:.1f} min",
        f"best trial      {study['best_trial']} of study {study['id']}",
        f"parameters      {params}",
        "validation      " + _metrics(metrics, "val"),
        "test (held out) " + _metrics(metrics, "test"),
        f"video           {video['frames']} frames, accuracy {video['accuracy']:.3f}; latency p50 "
        f"{video['p50_ms']:.1f} ms, p95 {video['p95_ms']:.1f} ms; {video['fps']:.1f} fps "
        f"({'meets' if video['real_time'] else 'misses'} the {video['target_fps']:g} fps target)",
        f"study report    {results.get('report', '-')}",
        f"trial metrics   {study['artifacts'].get('metrics', '-')}",
        f"model           {model['uri']} (name {model['name']}, version {model['version']})",
        f"annotated video {video['annotated_video']}",
        f"weights         {results['weights']['uri']}",
        f"logs            {results['services']['logs']}",
    ]
    return lines + ["=" * 72]


def _metrics(metrics: dict[str, float], prefix: str) -> str:
    shown = [f"{name} {metrics[f'{prefix}_{name}']:.3f}" for name in _SHOWN if f"{prefix}_{name}" in metrics]
    return ", ".join(shown) or "-"


def write_summary(path: Path, results: dict[str, Any], elapsed_s: float) -> None:
    path.write_text(json.dumps({**results, "elapsed_s": round(elapsed_s, 1)}, indent=2, default=str))
