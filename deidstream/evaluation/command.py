"""``deidstream evaluate ORIGINAL ANONYMISED``: measure what an anonymiser did, on any pair of videos."""

from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path

from deidstream.errors import DeidstreamError, InputNotFoundError
from deidstream.evaluation.attack import default_gallery, load_gallery
from deidstream.evaluation.judge import DETECTORS, DlibRecognizer
from deidstream.evaluation.metrics import Evaluation, Evaluator
from deidstream.evaluation.outcomes import FaceOutcomes
from deidstream.evaluation.report import table, write_plots
from deidstream.report import write_json_atomic

log = logging.getLogger(__name__)


def evaluate(original: str | Path, output: str | Path, *, every: int = 5, detector: str = "hog",
             upsample: int = 1, gallery: str | Path | None = None, attack_note: str = "no gallery given",
             report: str | Path | None = None) -> Evaluation:
    """Compare an anonymised video with its original (see ``deidstream.evaluation.metrics``);
    ``gallery``: a folder of real faces for the rank-1 attack (the shared data folder, or any folder of
    face images); None skips the attack, saying ``attack_note``; ``report``: the run report the
    anonymisation wrote (``--report``), for what each face got (surrogate coverage)."""
    for path in (Path(original), Path(output), *([Path(report)] if report is not None else [])):
        if not path.exists():
            raise InputNotFoundError(f"{path}: no such file")
    if gallery is not None and not Path(gallery).is_dir():
        raise InputNotFoundError(f"{gallery}: no such gallery folder")
    recognizer = DlibRecognizer(detector, upsample)
    faces = load_gallery(Path(gallery)) if gallery is not None else None
    outcomes = FaceOutcomes.load(report) if report is not None else None
    return Evaluator(recognizer, every=every, gallery=faces, attack_note=attack_note,
                     outcomes=outcomes).run(original, output)


def _gallery(args: argparse.Namespace) -> tuple[Path | None, str]:
    """The attack's gallery folder and, when there is none, why."""
    if args.no_attack:
        return None, "--no-attack"
    if args.gallery is not None:
        return args.gallery, ""
    found = default_gallery()
    return found, "" if found else "no gallery: ../shared/data not found; pass --gallery DIR"


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deidstream evaluate",
        description="Measure privacy (ID distance, re-identification, leak rate, a rank-1 attack), utility (face "
                    "detectability, PD, PSNR, SSIM, flicker, coverage) and what a viewer sees (apparent sex, "
                    "skin tone, skin colour, sharpness, eye and mouth movement) of an anonymised video.",
    )
    p.add_argument("original", type=Path)
    p.add_argument("anonymised", type=Path)
    p.add_argument("--every", type=int, default=5, metavar="K", help="evaluate every K-th frame (default: 5)")
    p.add_argument("--detector", choices=DETECTORS, default="hog",
                   help="independent face detector from dlib; cnn is more thorough and much slower (default: hog)")
    p.add_argument("--upsample", type=int, default=1,
                   help="detector upsampling: 1 finds faces down to ~40 px, 0 is 4x faster (default: 1)")
    p.add_argument("--gallery", type=Path, metavar="DIR",
                   help="real faces for a rank-1 identification attack on the output: the shared data folder "
                        "(its lfw_2000, utkface_1500 and identities sets) or any folder of face images; described "
                        "once and cached under ~/.cache/deidstream (default: ../shared/data if present)")
    p.add_argument("--no-attack", action="store_true", help="skip the rank-1 identification attack")
    p.add_argument("--report", type=Path, metavar="R.json",
                   help="the run report of the anonymisation (deidstream IN OUT --report R.json): adds what each "
                        "face got (surrogate, fallback, kept, missed) and the share of faces >= 64 px with a surrogate")
    p.add_argument("--json", type=Path, metavar="FILE", help="write every number as JSON ('-' for stdout)")
    p.add_argument("--plots", type=Path, metavar="DIR", help="write plots and a contact sheet of the worst faces")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="deidstream: %(levelname)s: %(message)s")
    try:
        gallery, note = _gallery(args)
        if gallery is None and not args.no_attack:
            log.warning("rank-1 attack skipped: %s", note)
        ev = evaluate(args.original, args.anonymised, every=args.every, detector=args.detector,
                      upsample=args.upsample, gallery=gallery, attack_note=note, report=args.report)
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
