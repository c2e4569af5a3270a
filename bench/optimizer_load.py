"""Many simulated workers against one real optimizer process: latency per RPC, errors by code,
optimizer memory and CPU.

Each simulated worker does what a trainer does, over real gRPC: LeaseTrial (long-poll, with a
request id), ReportProgress every ``--report-every`` seconds (jittered +-30%) for about
``--reports-per-trial`` reports (each with metrics, so each is stored), CompleteTrial, and again.
Trials differ in length as real ones do (backbones, epochs, early stopping): each makes a number of
reports drawn from ``--reports-per-trial`` +- ``--trial-spread`` (default 50%). ``--trial-spread 0``
is the worst case: every worker starts at once and all their trials end within the same second or
two, so hundreds of completions and leases arrive together every trial length.
Workers run as asyncio tasks in ``--procs`` client processes, spread over several connections.
The optimizer is ``saga optimizer`` as its own process; its memory (RSS) and CPU are sampled every
second. Latencies are measured by the workers (client side, so they include the client's own
queueing on a loaded machine).

    .venv/bin/python bench/optimizer_load.py                       # 500 workers, 5 studies, 2 min
    .venv/bin/python bench/optimizer_load.py --studies 50 --gp-studies 0
    .venv/bin/python bench/optimizer_load.py --trial-spread 0                      # all trials end together
    .venv/bin/python bench/optimizer_load.py --json results.json   # also the raw figures
"""
from __future__ import annotations

import argparse
import asyncio
import atexit
import json
import multiprocessing as mp
import os
import queue
import random
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from collections import Counter, defaultdict
from pathlib import Path

import grpc
import psutil

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from saga.v1 import optimizer_pb2 as pb  # noqa: E402
from saga.v1 import optimizer_pb2_grpc as pb_grpc  # noqa: E402
from trial_contract.limits import MAX_TRIALS_PER_PHASE  # noqa: E402

RPCS = ("LeaseTrial", "ReportProgress", "CompleteTrial")


def study_spec(i: int, gp: bool, parallel: int, lease_s: float) -> dict:
    return {"name": f"load-{i}", "dataset": {"uri": "/bench"}, "strategy": "joint" if gp else "random",
            "search_space": {"backbone": {"type": "categorical", "values": ["ResNet50", "DenseNet121", "VGG16"]},
                             "optimizer": {"type": "categorical", "values": ["Adam", "SGD", "RMSprop"]},
                             "learning_rate": {"type": "float", "low": 1e-4, "high": 0.1, "scale": "log"}},
            "budget": {"trials_per_phase": MAX_TRIALS_PER_PHASE, "initial_points": 5, "parallel_trials": parallel,
                       "max_attempts": 3},
            "stopping": {"nonconvergence": {"enabled": False}, "early_stopping": {"enabled": False}},
            "lease": {"timeout_seconds": lease_s}, "seed": i}


SLOW_S = 0.1     # calls slower than the target are counted per window of the run
WINDOW_S = 10.0


def note_slow(counts: Counter, rpc: str, t0: float, start: float) -> None:
    if time.monotonic() - t0 > SLOW_S:
        counts[f"slow {rpc} {int((t0 - start) // WINDOW_S)}"] += 1


async def worker(name: str, stub, args, stop_at: float, lat: dict, codes: Counter, done: Counter) -> None:
    rng = random.Random(name)
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        try:
            resp = await stub.LeaseTrial(pb.LeaseTrialRequest(worker_id=name, timeout_seconds=10,
                                                              request_id=uuid.uuid4().hex), timeout=40)
        except grpc.aio.AioRpcError as e:
            codes[("LeaseTrial", e.code().name)] += 1
            await asyncio.sleep(1)
            continue
        codes[("LeaseTrial", "OK")] += 1
        if not resp.HasField("trial"):
            lat["LeaseTrial (none within 10 s)"].append(time.monotonic() - t0)
            continue
        lat["LeaseTrial"].append(time.monotonic() - t0)
        trial, lease = resp.trial, resp.lease
        steps = [s["name"] for s in json.loads(trial.task_json)["steps"]]
        lost = False
        spread = args.trial_spread
        reports = max(1, round(args.reports_per_trial * rng.uniform(1 - spread, 1 + spread)))
        for k in range(reports):
            await asyncio.sleep(args.report_every * rng.uniform(0.7, 1.3))
            req = pb.ReportProgressRequest(trial_id=trial.id, lease_id=lease.id, step=steps[-1], epoch=k,
                                           metrics={"val_accuracy": rng.random(), "loss": rng.random()})
            t0 = time.monotonic()
            try:
                await stub.ReportProgress(req, timeout=30)
                codes[("ReportProgress", "OK")] += 1
                lat["ReportProgress"].append(time.monotonic() - t0)
                note_slow(done, "ReportProgress", t0, stop_at - args.duration)
            except grpc.aio.AioRpcError as e:
                codes[("ReportProgress", e.code().name)] += 1
                if e.code() == grpc.StatusCode.FAILED_PRECONDITION:
                    lost = True
                    break
        if lost:
            continue
        t0 = time.monotonic()
        try:
            await stub.CompleteTrial(pb.CompleteTrialRequest(
                trial_id=trial.id, lease_id=lease.id, outcome=pb.OUTCOME_SUCCEEDED,
                metrics={"val_accuracy": rng.random()}, artifacts={"checkpoint": f"s3://bench/{trial.id}"}), timeout=30)
            codes[("CompleteTrial", "OK")] += 1
            lat["CompleteTrial"].append(time.monotonic() - t0)
            note_slow(done, "CompleteTrial", t0, stop_at - args.duration)
            done["trials"] += 1
        except grpc.aio.AioRpcError as e:
            codes[("CompleteTrial", e.code().name)] += 1


async def loop_lag(lat: dict, stop_at: float) -> None:
    """How late this client process's own event loop wakes up (a 50 ms sleep, measured): the part of
    the client-side latencies that is the client's queueing, not the optimizer's."""
    while time.monotonic() < stop_at:
        t0 = time.monotonic()
        await asyncio.sleep(0.05)
        lat["client event-loop lag"].append(time.monotonic() - t0 - 0.05)


async def run_workers(target: str, names: list[str], args, stop_at: float) -> tuple[dict, Counter, Counter]:
    lat: dict[str, list[float]] = defaultdict(list)
    codes: Counter = Counter()
    done: Counter = Counter()
    channels = [grpc.aio.insecure_channel(target, options=[("saga.bench.connection", i)])
                for i in range(max(1, len(names) // 50))]
    stubs = [pb_grpc.OptimizerStub(c) for c in channels]
    probe = asyncio.ensure_future(loop_lag(lat, stop_at))
    await asyncio.gather(*(worker(n, stubs[i % len(stubs)], args, stop_at, lat, codes, done)
                           for i, n in enumerate(names)))
    await probe
    for c in channels:
        await c.close()
    return dict(lat), codes, done


def client_process(target: str, names: list[str], args, start: mp.Event, out: mp.Queue) -> None:
    out.put("ready")
    start.wait()  # every client process is ready (imports done): the load starts at once
    lat, codes, done = asyncio.run(run_workers(target, names, args, time.monotonic() + args.duration))
    out.put((lat, dict(codes), dict(done)))


def start_optimizer(db: Path, log: Path) -> tuple[subprocess.Popen, str, str]:
    """``saga optimizer`` on free ports; returns (process, gRPC target, metrics URL)."""
    proc = subprocess.Popen([sys.executable, "-m", "saga.cli.main", "--log-level", "WARNING", "optimizer",
                             "--host", "127.0.0.1", "--port", "0", "--db", str(db), "--metrics-port", "0",
                             "--no-dataset-check"],  # the simulated workers read no dataset
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=open(log, "w"), text=True,
                            env={**os.environ, "PYTHONUNBUFFERED": "1"})
    metrics = ""
    for line in proc.stdout:
        if m := re.search(r"metrics on :(\d+)/metrics", line):
            metrics = f"http://127.0.0.1:{m.group(1)}/metrics"
        if m := re.search(r"listening on (\S+)", line):
            threading.Thread(target=proc.stdout.read, daemon=True).start()
            return proc, m.group(1), metrics
    raise RuntimeError(f"optimizer did not start: {log.read_text()[-2000:]}")


def server_side(metrics_url: str) -> dict[str, dict[str, float]]:
    """p50/p99 of the optimizer's own answer times (saga_rpc_seconds), as histogram bucket bounds."""
    from prometheus_client.parser import text_string_to_metric_families

    text = urllib.request.urlopen(metrics_url, timeout=30).read().decode()
    buckets: dict[str, list[tuple[float, float]]] = defaultdict(list)
    for family in text_string_to_metric_families(text):
        if family.name == "saga_rpc_seconds":
            for sample in family.samples:
                if sample.name.endswith("_bucket"):
                    buckets[sample.labels["method"]].append((float(sample.labels["le"]), sample.value))
    out = {}
    for method, bs in buckets.items():
        bs.sort()
        total = bs[-1][1]
        if total:
            out[method] = {"count": int(total), **{f"p{int(q * 100)}_le_ms": next(le for le, n in bs if n >= q * total) * 1000
                                                  for q in (0.5, 0.99)}}
    return out


def tree_rss(proc: psutil.Process) -> int:
    """Memory of the optimizer and its proposal processes."""
    total = proc.memory_info().rss
    for child in proc.children(recursive=True):
        try:
            total += child.memory_info().rss
        except psutil.Error:
            pass
    return total


def tree_cpu(proc: psutil.Process) -> float:
    """CPU seconds of the optimizer's child processes (proposals)."""
    total = 0.0
    for child in proc.children(recursive=True):
        try:
            t = child.cpu_times()
            total += t.user + t.system
        except psutil.Error:
            pass
    return total


def quantile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(q * (len(xs) - 1) + 0.5))] if xs else float("nan")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--workers", type=int, default=500)
    ap.add_argument("--studies", type=int, default=5)
    ap.add_argument("--gp-studies", type=int, default=1, help="how many of the studies propose with GP+EI")
    ap.add_argument("--duration", type=float, default=120.0, help="seconds of load")
    ap.add_argument("--report-every", type=float, default=0.5, help="seconds between a worker's reports")
    ap.add_argument("--reports-per-trial", type=int, default=40)
    ap.add_argument("--trial-spread", type=float, default=0.5,
                    help="trial lengths vary by this fraction (0: every trial has the same length)")
    ap.add_argument("--lease", type=float, default=30.0, help="lease timeout of the studies (s)")
    ap.add_argument("--procs", type=int, default=2, help="client processes")
    ap.add_argument("--json", help="write the figures to this file too")
    args = ap.parse_args()

    tmp = Path(tempfile.mkdtemp(prefix="saga-load-"))
    opt, target, metrics_url = start_optimizer(tmp / "opt.db", tmp / "optimizer.log")
    atexit.register(lambda: opt.poll() is None and opt.kill())  # also when the run fails half-way
    proc = psutil.Process(opt.pid)
    channel = grpc.insecure_channel(target)
    stub = pb_grpc.OptimizerStub(channel)
    parallel = max(1, -(-args.workers // args.studies))
    for i in range(args.studies):
        spec = study_spec(i, i < args.gp_studies, parallel, args.lease)
        stub.CreateStudy(pb.CreateStudyRequest(spec_json=json.dumps(spec)), timeout=60)
    names = [f"w{i:03d}" for i in range(args.workers)]
    ctx = mp.get_context("spawn")
    out: mp.Queue = ctx.Queue()
    start = ctx.Event()
    clients = [ctx.Process(target=client_process, args=(target, names[p::args.procs], args, start, out))
               for p in range(args.procs)]
    for c in clients:
        c.start()
    for _ in clients:
        assert out.get(timeout=300) == "ready"
    cpu0 = proc.cpu_times()
    started = time.monotonic()
    start.set()
    rss, threads, results = [], [], []
    # A client process cannot exit before its results are read from the queue: read them as they
    # come, so that the run ends (and is timed) when the last worker has finished its last trial.
    while len(results) < len(clients) and time.monotonic() < started + args.duration + 120:
        rss.append(tree_rss(proc))
        threads.append(proc.num_threads())
        try:
            results.append(out.get(timeout=1))
        except queue.Empty:
            pass
    results += [out.get(timeout=120) for _ in range(len(clients) - len(results))]
    elapsed = time.monotonic() - started
    cpu1 = proc.cpu_times()
    helpers = tree_cpu(proc)  # the proposal processes, started during the run
    for c in clients:
        c.join(timeout=30)
    counts = stub.ListStudies(pb.ListStudiesRequest(), timeout=60).studies
    by_state: Counter = Counter()
    for s in counts:
        for k, v in s.trial_counts.items():
            by_state[k] += v
    served = server_side(metrics_url)
    channel.close()
    opt.terminate()
    opt.wait(timeout=60)

    lat: dict[str, list[float]] = defaultdict(list)
    codes: Counter = Counter()
    trials = 0
    slow: Counter = Counter()
    for part_lat, part_codes, part_done in results:
        for k, v in part_lat.items():
            lat[k] += v
        codes.update(part_codes)
        slow.update({k: n for k, n in part_done.items() if k.startswith("slow ")})
        trials += part_done.get("trials", 0)
    summary = {
        "config": vars(args), "elapsed_s": round(elapsed, 1), "trials_completed": trials,
        "trials_by_state_at_end": dict(by_state),
        "rpcs": {k: {"count": len(v), "p50_ms": round(quantile(v, 0.5) * 1000, 1),
                     "p99_ms": round(quantile(v, 0.99) * 1000, 1), "max_ms": round(max(v) * 1000, 1)}
                 for k, v in sorted(lat.items())},
        "server_side": served,
        "codes": {f"{rpc} {code}": n for (rpc, code), n in sorted(codes.items())},
        f"over_{SLOW_S * 1000:.0f}_ms_by_{WINDOW_S:.0f}_s_window": {
            rpc: [slow.get(f"slow {rpc} {w}", 0) for w in range(int(args.duration // WINDOW_S) + 1)]
            for rpc in ("ReportProgress", "CompleteTrial")},
        # over the whole run: workers finish the trial they hold after --duration, at the pace they get
        "rate_per_s": {rpc: round(sum(n for (r, c), n in codes.items() if r == rpc) / elapsed, 1) for rpc in RPCS},
        "optimizer": {"rss_max_mib": round(max(rss) / 2**20, 1), "rss_end_mib": round(rss[-1] / 2**20, 1),
                      "threads_max": max(threads),
                      "cpu_s": round((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system), 1),
                      "proposal_processes_cpu_s": round(helpers, 1),
                      "cpu_ms_per_call": round(((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system))
                                               / max(1, sum(len(v) for v in lat.values())) * 1000, 3)},
        "machine": {"cpus": os.cpu_count(), "load_avg_1m_at_end": round(os.getloadavg()[0], 2)},
    }
    print(json.dumps(summary, indent=2))
    print(f"\n| rpc | count | p50 | p99 | max |\n|---|---|---|---|---|")
    for k, v in summary["rpcs"].items():
        print(f"| {k} | {v['count']} | {v['p50_ms']} ms | {v['p99_ms']} ms | {v['max_ms']} ms |")
    print("\nanswer times in the optimizer (saga_rpc_seconds; bucket bounds):")
    for k, v in served.items():
        print(f"  {k}: {v['count']} calls, p50 <= {v['p50_le_ms']:g} ms, p99 <= {v['p99_le_ms']:g} ms")
    for rpc, counts in summary[f"over_{SLOW_S * 1000:.0f}_ms_by_{WINDOW_S:.0f}_s_window"].items():
        print(f"{rpc} calls over {SLOW_S * 1000:.0f} ms in each {WINDOW_S:.0f} s of the run: {counts}")
    errors = {k: n for k, n in summary["codes"].items() if not k.endswith(" OK")}
    print(f"\nerrors by code: {errors or 'none'}; trials completed {trials}; at the end {dict(by_state)}")
    o = summary["optimizer"]
    print(f"optimizer: RSS max {o['rss_max_mib']} MiB (with its proposal processes), threads max {o['threads_max']}, "
          f"CPU {o['cpu_s']} s in {elapsed:.0f} s ({o['cpu_ms_per_call']} ms per call), "
          f"and {o['proposal_processes_cpu_s']} s in proposal processes")
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2))


if __name__ == "__main__":
    main()
