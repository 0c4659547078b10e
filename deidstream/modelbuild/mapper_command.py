"""``deidstream build-mapper``: train M_c on the generator's synthetic faces and write its weights.

The table of every donor's surrogate for every training face is built first (SFHQ photos and renders of
one donor into another photo: synthetic only) or read back with ``--table``; then M_c is trained on it
(:mod:`deidstream.modelbuild.mapper_train`). The weights and their provenance (data, counts, settings,
losses, held-out measures, time) go to ``--output`` and a JSON beside it.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path

import numpy as np

from deidstream.modelbuild.mapper_table import DONOR_FOLDER, MapperTable, build_table, judge, video_views
from deidstream.modelbuild.mapper_train import TrainSettings, donor_table, train, validate
from deidstream.networks.mapper import DEFAULT_MAPPER


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deidstream build-mapper", description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=Path("../shared/data"), help="the shared data folder")
    p.add_argument("--table", type=Path, default=None,
                   help="the judged table (.npz): read if it exists, else built and written there")
    p.add_argument("--workers", type=int, default=2, help="processes that render the table")
    p.add_argument("--limit", type=int, default=0, help="at most this many photos (quick builds)")
    p.add_argument("--steps", type=int, default=TrainSettings().steps)
    p.add_argument("--validate", action=argparse.BooleanOptionalAction, default=True,
                   help="measure it on the real shared videos' faces too (never trained on)")
    p.add_argument("--output", type=Path, default=DEFAULT_MAPPER, help="weights to write (.npz)")
    p.add_argument("-v", "--verbose", action="store_true")
    return p


def run(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="deidstream build-mapper: %(message)s")
    if args.workers < 1 or args.steps < 1:
        print("deidstream build-mapper: --workers and --steps must be at least 1", file=sys.stderr)
        return 2
    if (args.table is None or not args.table.is_file()) and not (args.data / DONOR_FOLDER).is_dir():
        print(f"deidstream build-mapper: {args.data / DONOR_FOLDER}: not found (is --data the shared data folder?)",
              file=sys.stderr)
        return 1
    print(json.dumps(build(args), indent=2))
    return 0


def build(args: argparse.Namespace) -> dict:
    from deidstream.config import LockConfig
    from deidstream.engine.generator.compose import default_composer
    from deidstream.pipelines.locking import subject_attributes

    started = time.perf_counter()
    if args.table is not None and args.table.is_file():  # its provenance was written beside it, if it still is
        sidecar = args.table.with_suffix(".json")
        made = json.loads(sidecar.read_text()) if sidecar.is_file() else {"read_from": args.table.name}
        table = MapperTable.load(args.table)
    else:
        table, made = build_table(args.data, workers=args.workers, limit=args.limit)
        if args.table is not None:
            table.save(args.table)
            args.table.with_suffix(".json").write_text(json.dumps(made, indent=2) + "\n")
    composer = default_composer()
    hair = np.array([np.full(2, np.nan) if (h := composer.donor_hair(i)) is None else h
                     for i in range(len(composer.bank))], np.float32)
    donors = donor_table(composer.bank, hair, subject_attributes)
    settings = TrainSettings(steps=args.steps)
    mapper, trained = train(table, composer.bank, donors, LockConfig(), settings)
    videos = video_views(args.data) if args.validate and (args.data / "videos").is_dir() else []
    if videos:  # the real shared faces: validation only
        trained["validation"] = {"faces": f"largest face of 2 frames of each shared .mp4 video ({len(videos)})",
                                 **validate(mapper, judge(videos, args.workers), donors, LockConfig(), settings)}
    provenance = {
        "built_by": "deidstream build-mapper",
        "built": time.strftime("%Y-%m-%d", time.gmtime()),
        "data": made, "table": {"subjects": len(table.embedding), "pairs": int(np.isfinite(table.distance).sum())},
        "donor_bank": f"{len(composer.bank)} donors (deidstream/engine/generator/models/donors.npz)",
        "training": trained, "seconds": round(time.perf_counter() - started, 1),
    }
    mapper = dataclasses.replace(mapper, provenance=provenance)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    mapper.save(args.output)
    args.output.with_suffix(".json").write_text(json.dumps(provenance, indent=2) + "\n")
    return provenance

