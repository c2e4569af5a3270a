"""``saga demo`` as a pipeline of steps: synthetic data -> pre-trained source weights -> services
-> study -> report -> export -> serving -> classify a video -> summary. Each step prints a header and its
time; a failing step raises DemoFailed naming the step and the reason (with log lines)."""
from __future__ import annotations

import contextlib
import json
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from saga.local.demo_config import BACKBONE, SOURCE_SEED, TARGET_SEED, VIDEO_SEED, DemoConfig
from saga.local.processes import Supervisor
from saga.local.stack import Endpoints, StackConfig, start_stack

MARKER = ".saga-demo"  # marks a folder this command made, so a re-run may clear it
STEPS = 7


class DemoFailed(RuntimeError):
    """A step failed; ``step`` names it."""

    def __init__(self, step: str, reason: str):
        super().__init__(f"step '{step}' failed: {reason}")
        self.step = step


@dataclass
class Demo:
    config: DemoConfig
    root: Path
    say: Callable[[str], None] = print
    results: dict[str, Any] = field(default_factory=dict)
    model_base: str = ""
    _step: int = 0

    @property
    def store(self) -> str:
        return str(self.root / "store")

    @contextlib.contextmanager
    def step(self, title: str) -> Iterator[None]:
        self._step += 1
        self.say(f"\n[{self._step}/{STEPS}] {title}")
        started = time.monotonic()
        try:
            yield
        except DemoFailed:
            raise
        except Exception as e:  # any cause, reported with the step it broke
            raise DemoFailed(title, f"{type(e).__name__}: {e}") from e
        self.say(f"      ({time.monotonic() - started:.1f}s)")

    def prepare_dir(self) -> None:
        """A fresh demo folder; refuses to clear a non-empty folder this command did not make."""
        if self.root.exists() and any(self.root.iterdir()):
            if not (self.root / MARKER).exists():
                raise DemoFailed("prepare", f"{self.root} is not empty and not a previous demo's folder; "
                                            "choose another --dir")
            shutil.rmtree(self.root)
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / MARKER).write_text("made by saga demo; cleared by the next run\n")

    def data(self) -> str:
        from datastore import open_store
        from datastore.synth import synthesize
        from datastore.upload import upload_dataset

        c = self.config
        with self.step(f"Synthetic dataset: {c.classes} classes x {c.per_class} images of {c.synth_size} px"):
            src = synthesize(self.root / "work" / "target", classes=c.classes, per_class=c.per_class,
                             size=c.synth_size, seed=TARGET_SEED)
            uri = f"{self.store}/datasets/demo"
            manifest = upload_dataset(src.out, open_store(uri), split="0.7,0.15,0.15", seed=TARGET_SEED)
            counts = {split: sum(per.values()) for split, per in manifest.counts().items()}
            self.say(f"      classes {', '.join(manifest.classes)}; split {counts}; uploaded to {uri}")
        self.results["dataset"] = {"uri": uri, "classes": manifest.classes, "split": counts}
        return uri

    def weights(self) -> str:
        c = self.config
        if c.online:
            with self.step(f"Transfer weights: ImageNet {BACKBONE} from the Keras hub (--online)"):
                import keras
                keras.applications.MobileNetV2(include_top=False, weights="imagenet",
                                               input_shape=(c.image_size, c.image_size, 3))
            self.results["weights"] = {"uri": "imagenet"}
            return "imagenet"
        from datastore import open_store
        from datastore.synth import synthesize
        from datastore.upload import upload_dataset
        from trainer_svc.pretrain import PretrainConfig, pretrain_weights

        with self.step(f"Transfer weights: pre-train {BACKBONE} on a source task "
                       f"({c.source_classes} classes, other images), store its weights file"):
            src = synthesize(self.root / "work" / "source", classes=c.source_classes,
                             per_class=c.source_per_class, size=c.synth_size, seed=SOURCE_SEED)
            # the same path as `saga data upload` + `saga weights pretrain`
            source_uri = f"{self.store}/datasets/source"
            upload_dataset(src.out, open_store(source_uri), split="0.9,0.1", seed=SOURCE_SEED)
            config = PretrainConfig(backbone=BACKBONE, image_size=c.image_size, epochs=c.pretrain_epochs,
                                    batch_size=16, seed=SOURCE_SEED, validation_split=None)
            result = pretrain_weights(source_uri, f"{self.store}/weights/{BACKBONE.lower()}-synthetic.keras",
                                      config, say=lambda line: self.say(f"      {line}"))
            self.say(f"      {result.images} images, {c.pretrain_epochs} epochs, train accuracy "
                     f"{result.train_accuracy:.3f}; weights at {result.uri}")
        self.results["weights"] = {"uri": result.uri, "source_train_accuracy": result.train_accuracy}
        return result.uri

    def services(self, supervisor: Supervisor) -> Endpoints:
        c = self.config
        with self.step(f"Services: optimizer, {c.workers} trainer(s), serving (logs in {supervisor.log_dir})"):
            stack = StackConfig(dir=self.root / "services", store=self.store, workers=c.workers,
                                optimizer_port=0, grpc_port=0, rest_port=0, model_name=c.model_name)
            ends = start_stack(stack, supervisor, progress=lambda s: self.say(f"      {s}"))
            for line in ends.lines(stack):
                self.say(f"      {line}")
        self.results["services"] = {"optimizer": ends.optimizer, "serving_grpc": ends.serving_grpc,
                                    "serving_rest": ends.serving_rest, "logs": str(supervisor.log_dir)}
        self.model_base = stack.model_base
        return ends

    def study(self, ends: Endpoints, supervisor: Supervisor, dataset_uri: str, weights: str) -> dict[str, Any]:
        from optimizer_svc.client import OptimizerClient
        from saga.local.study_progress import describe_params, follow_study

        c = self.config
        with self.step(f"Study: strategy 'shared' (search {c.search_trials}, layer {c.layer_trials} trials), "
                       f"{c.workers} worker(s)"):
            with OptimizerClient(ends.optimizer) as client:
                spec = c.study_spec(dataset_uri, weights)
                (self.root / "study.json").write_text(json.dumps(spec, indent=2))
                study = client.create_study(spec)
                self.say(f"      study {study.id}: phases {', '.join(p.name for p in study.phases)}")
                follow_study(client, study.id, supervisor, c.stall_timeout_s, self.say)
                best = client.best_trial(study.id)
                if best is None:
                    raise RuntimeError(f"study {study.id} completed without a best trial")
                self.say(f"      best trial {best.id}: {describe_params(best)}, val {best.value:.3f}")
        info = {"id": study.id, "best_trial": best.id, "parameters": dict(_params(best)),
                "objective": best.value, "metrics": dict(best.metrics), "artifacts": dict(best.artifacts)}
        self.results["study"] = info
        return info

    def report(self, ends: Endpoints, study: dict[str, Any]) -> Path:
        from optimizer_svc.client import OptimizerClient
        from report.build import write_report
        from report.source import read_for_report

        with self.step("Report: the thesis's figures and tables for the study (saga report)"):
            with OptimizerClient(ends.optimizer) as client:
                data, evaluation, why = read_for_report(client, study["id"])
            report = write_report(data, evaluation, self.root / "report", evaluation_note=why)
            self.say(f"      {len(report.figures)} figures, {len(report.tables)} tables: {report.index}")
        self.results["report"] = str(report.index)
        return report.index

    def export(self, ends: Endpoints, study: dict[str, Any]) -> dict[str, Any]:
        from saga.cli.export import fetch_trial
        from serving.from_trial import export_trial

        with self.step(f"Export the best trial as model '{self.config.model_name}' and wait for serving"):
            trial = fetch_trial(ends.optimizer, study["id"], None)
            result = export_trial(trial, self.model_base, self.config.model_name)
            self.say(f"      version {result.version} at {result.uri}")
            _wait_available(ends.serving_rest, self.config.model_name, result.version, self.say)
        self.results["model"] = {"name": self.config.model_name, "version": result.version, "uri": result.uri}
        return self.results["model"]

    def classify(self, ends: Endpoints) -> dict[str, Any]:
        from saga.local.classify_video import classify_video
        from saga.local.video import make_video

        c = self.config
        with self.step(f"Classify a generated video ({c.classes} scenes x {c.video_frames_per_class} frames) "
                       f"over gRPC"):
            video = make_video(self.root / "video" / "endoscopy.avi", classes=c.classes,
                               frames_per_class=c.video_frames_per_class, size=c.video_size, seed=VIDEO_SEED,
                               scratch=self.root / "work" / "video")
            out = self.root / "video" / "annotated.avi"
            summary = classify_video(video, ends.serving_grpc, c.model_name, out)
            self.say(f"      {summary['frames']} frames, accuracy {summary['accuracy']:.3f}, p50 "
                     f"{summary['p50_ms']:.1f} ms, {summary['fps']:.1f} fps; annotated video {out}")
        self.results["video"] = summary
        return summary


def _params(trial) -> dict[str, Any]:
    from optimizer_svc.client import parameters
    return parameters(trial)


def _wait_available(rest: str, name: str, version: int, say: Callable[[str], None],
                    timeout_s: float = 600.0) -> None:
    """Polls serving's REST status until ``version`` is AVAILABLE (it polls the model base)."""
    import requests

    deadline = time.monotonic() + timeout_s
    last = ""
    while time.monotonic() < deadline:
        try:
            r = requests.get(f"http://{rest}/v1/models/{name}", timeout=10)
            states = {int(s["version"]): s["state"] for s in r.json().get("model_version_status", [])}
        except (requests.RequestException, ValueError, KeyError) as e:
            states, last = {}, str(e)
        if states.get(version) == "AVAILABLE":
            say(f"      serving reports version {version} AVAILABLE")
            return
        last = last or str(states)
        time.sleep(1.0)
    raise TimeoutError(f"serving did not load version {version} of {name} within {timeout_s:.0f}s "
                       f"(last status: {last})")


def run_demo(config: DemoConfig, root: Path, *, keep: bool = False,
             say: Callable[[str], None] = print, wait: Callable[[], None] | None = None) -> dict[str, Any]:
    """Runs every step; returns the results (also in ROOT/summary.json). With ``keep``, calls
    ``wait`` (e.g. until Ctrl-C) before stopping the services. Raises DemoFailed."""
    from saga.local.demo_summary import format_summary, write_summary
    from saga.local.processes import ProcessError

    started = time.monotonic()
    demo = Demo(config, root.resolve(), say)
    demo.prepare_dir()
    dataset = demo.data()
    weights = demo.weights()
    with Supervisor(demo.root / "services" / "logs") as supervisor:
        try:
            ends = demo.services(supervisor)
            study = demo.study(ends, supervisor, dataset, weights)
            demo.report(ends, study)
            demo.export(ends, study)
            demo.classify(ends)
        except DemoFailed as e:
            cause = e.__cause__
            if not isinstance(cause, ProcessError) and supervisor.dead():
                # a step failed because a service died: say which, with its log lines
                raise DemoFailed(e.step, f"{e}\n" + "\n".join(c.describe_death() for c in supervisor.dead())) from e
            raise
        elapsed = time.monotonic() - started
        write_summary(demo.root / "summary.json", demo.results, elapsed)
        for line in format_summary(demo.results, elapsed):
            say(line)
        say(f"summary: {demo.root / 'summary.json'}")
        if keep and wait is not None:
            say(f"services stay up (--keep): serving gRPC {ends.serving_grpc}, REST {ends.serving_rest}, "
                f"optimizer {ends.optimizer}; Ctrl-C stops them")
            wait()
        say("stopping services")
    return demo.results
