"""``saga demo``: the whole system end to end on a fresh machine without internet: synthetic data,
transfer weights from a pre-trained source task, a study on local workers, export, serving and
classification of a generated video, then one summary."""
from __future__ import annotations

import argparse
import sys
import threading
from pathlib import Path


def configure(p: argparse.ArgumentParser) -> None:
    p.add_argument("--workers", type=int, default=None, help="trainer workers (default 2; 1 with --quick)")
    p.add_argument("--online", action="store_true",
                   help="use ImageNet weights from the Keras hub (needs internet) instead of pre-training")
    p.add_argument("--dir", default=".saga/demo", help="everything the demo makes: store, logs, video, "
                                                        "summary.json (default .saga/demo; cleared on each run)")
    p.add_argument("--keep", action="store_true", help="keep the services running after the summary, until Ctrl-C")
    p.add_argument("--quick", action="store_true",
                   help="1 trial per phase, 1 epoch per step, fewer and smaller images (about 2 minutes)")
    p.add_argument("--model-name", default="saga", help="name of the exported model (default saga)")


def run(args: argparse.Namespace) -> int:
    from saga.local.demo import DemoFailed, run_demo
    from saga.local.demo_config import DemoConfig

    try:
        make = DemoConfig.quick if args.quick else DemoConfig
        workers = {"workers": args.workers} if args.workers is not None else {}
        config = make(online=args.online, model_name=args.model_name, **workers)
    except ValueError as e:
        print(f"saga demo: {e}", file=sys.stderr)
        return 2
    from saga.local.processes import StopRequested, raise_on_stop_signals, say

    # SIGTERM unwinds like Ctrl-C, so the supervisor stops every service it started.
    raise_on_stop_signals()
    try:
        run_demo(config, Path(args.dir), keep=args.keep, say=say,
                 wait=lambda: threading.Event().wait())
    except DemoFailed as e:
        say(f"\nsaga demo FAILED at {e}", sys.stderr)
        return 1
    except StopRequested as e:
        say(f"\nsaga demo: stopped ({e}); services stopped", sys.stderr)
        return 0 if args.keep else 130
    return 0
