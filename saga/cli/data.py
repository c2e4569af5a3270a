"""``saga data``: make synthetic datasets, upload image folders, show a dataset's manifest."""
from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from datastore.manifest import Manifest

_STAGES = {"check": "checked", "upload": "uploaded"}


def configure(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", metavar="ACTION", required=True)

    synth = sub.add_parser("synth", help="write a synthetic endoscopy-like image folder")
    synth.add_argument("out", metavar="OUT", help="output folder (SRC layout for upload)")
    synth.add_argument("--classes", type=int, default=3, help="number of classes, 2-8 (default 3)")
    synth.add_argument("--per-class", type=int, default=40, help="images per class (default 40)")
    synth.add_argument("--size", type=int, default=64, help="image side in pixels (default 64)")
    synth.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    synth.add_argument("--videos", type=int, default=0,
                       help="spread each class over N video folders (Nerthus layout)")
    synth.add_argument("--corrupt", type=int, default=0,
                       help="also write N broken files, for fault tests")

    upload = sub.add_parser("upload", help="upload a folder-per-class image tree with a manifest")
    upload.add_argument("src", metavar="SRC", help="folder with one sub-folder per class")
    upload.add_argument("dataset_uri", metavar="DATASET_URI",
                        help="dataset root: s3://bucket/prefix or a local directory")
    upload.add_argument("--split", default="0.7,0.15,0.15",
                        help="train,validation[,test] fractions (default 0.7,0.15,0.15)")
    upload.add_argument("--seed", type=int, default=0, help="seed of the split (default 0)")
    upload.add_argument("--group-by", default=None, metavar="REGEX",
                        help="keep files whose relative paths share this regex's match (or group 1)"
                             " in one split, e.g. '^([^/]+/[^/]+)/' for per-video folders")

    info = sub.add_parser("info", help="summarize a dataset's manifest")
    info.add_argument("dataset_uri", metavar="DATASET_URI")


class _ProgressLine:
    """Counts on one rewritten line on a terminal; a line per stage end otherwise (logs)."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.tty = stream.isatty()

    def __call__(self, stage: str, done: int, total: int) -> None:
        text = f"{_STAGES.get(stage, stage)} {done}/{total}"
        if self.tty:
            self.stream.write(f"\r{text}" + ("\n" if done == total else ""))
            self.stream.flush()
        elif done == total:
            print(text, file=self.stream)


def _synth(args: argparse.Namespace) -> int:
    from datastore.synth import VIDEO_GROUP_REGEX, synthesize

    result = synthesize(args.out, classes=args.classes, per_class=args.per_class, size=args.size,
                        seed=args.seed, videos=args.videos, corrupt=args.corrupt)
    print(f"wrote {len(result.images)} images of {len(result.classes)} classes "
          f"({', '.join(result.classes)}) to {result.out}")
    if result.corrupt:
        print(f"wrote {len(result.corrupt)} corrupt files")
    if args.videos:
        print(f"upload with: --group-by '{VIDEO_GROUP_REGEX}'")
    return 0


def _upload(args: argparse.Namespace) -> int:
    from datastore import open_store
    from datastore.upload import upload_dataset

    store = open_store(args.dataset_uri)
    manifest = upload_dataset(args.src, store, split=args.split, seed=args.seed,
                              group_by=args.group_by, progress=_ProgressLine(sys.stderr))
    for skipped in manifest.skipped:
        print(f"skipped {skipped.path}: {skipped.reason}")
    _summary(manifest)
    print(f"manifest {store.uri_for('manifest.json')} sha256 {manifest.sha256}")
    return 0


def _info(args: argparse.Namespace) -> int:
    from datastore import load_manifest, open_store

    manifest = load_manifest(open_store(args.dataset_uri))
    _summary(manifest)
    print(f"seed {manifest.seed}, group-by {manifest.group_by or '-'}, "
          f"{len(manifest.skipped)} skipped, sha256 {manifest.sha256}")
    return 0


def _summary(manifest: "Manifest") -> None:
    counts = manifest.counts()
    width = max(len(c) for c in manifest.classes + ["class"])
    print(f"{'class':<{width}}  " + "  ".join(f"{s:>10}" for s in counts))
    for label in manifest.classes:
        print(f"{label:<{width}}  " + "  ".join(f"{counts[s][label]:>10}" for s in counts))
    print(f"{'total':<{width}}  " + "  ".join(f"{sum(counts[s].values()):>10}" for s in counts))


def run(args: argparse.Namespace) -> int:
    from datastore import StoreError
    from datastore.upload import DatasetError

    actions = {"synth": _synth, "upload": _upload, "info": _info}
    try:
        return actions[args.action](args)
    except (DatasetError, ValueError, NotADirectoryError, FileNotFoundError) as exc:
        print(f"saga data {args.action}: {exc}", file=sys.stderr)
        return 2
    except StoreError as exc:
        print(f"saga data {args.action}: {exc}", file=sys.stderr)
        return 1
