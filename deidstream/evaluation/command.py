"""``deidstream evaluate ORIGINAL ANONYMISED``: measure what an anonymiser did, on any pair of videos."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from deidstream.errors import DeidstreamError, InputNotFoundError
from deidstream.evaluation.metrics import Evaluation, Evaluator
from deidstream.evaluation.report import table, write_plots
from deidstream.report import write_json_atomic
from deidstream.tracking.recognition import DETECTORS, DlibRecognizer

log = logging.getLogger(__name__)


def evaluate(original: str | Path, output: str | Path, *, every: int = 5, detector: str = "hog",
             upsample: int = 1) -> Evaluation:
    """Compare an anonymised video with its original (see ``deidstream.evaluation.metrics``)."""
    for path in (Path(original), Path(output)):
        if not path.exists():
            raise InputNotFoundError(f"{path}: no such file")
    return Evaluator(DlibRecognizer(detector, upsample), every=every).run(original, output)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deidstream evaluate",
        description="Measure privacy (ID distance, re-identification, leak rate) and utility (face "
                    "detectability, PD, PSNR, SSIM, flicker, coverage) of an anonymised video.",
    )
    p.add_argument("original", type=Path)
    p.add_argument("anonymised", type=Path)
    p.add_argument("--every", type=int, default=5, metavar="K", help="evaluate every K-th frame (default: 5)")
    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="independent face detector from dlib; cnn is more thorough and much slower (default: hog)")
    p.add_argument("--upsample", type=int, default=1,
                   help="detector upsampling: 1 finds faces down to ~40 px, 0 is 4x faster (default: 1)")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every number as JSON ('-' for stdout)")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write plots and a contact sheet of the worst faces")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="deidstream: %(levelname)s: %(message)s")
    try:
        ev = evaluate(args.original, args.anonymised, every=args.every, detector=args.detector,
                      upsample=args.upsample)
        print(table(ev), file=sys.stderr if args.json and str(args.json) == "-" else sys.stdout)
        if args.json and str(args.json) == "-":
            json.dump(ev.to_dict(), sys.stdout, indent=1)
            print()
        elif args.json:
            write_json_atomic(args.json, ev.to_dict())
        if args.plots:
            for path in write_plots(ev, args.plots):
                log.info("wrote %s", path)
    except DeidstreamError as exc:
        print(f"deidstream: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("deidstream: interrupted", file=sys.stderr)
        return 130
    return 0
