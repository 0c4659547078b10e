"""The ``deidstream`` command: ``deidstream IN OUT [options]``."""

from __future__ import annotations

import argparse
import logging
import sys
from pathlib import Path

from deidstream import __version__
from deidstream.api import anonymize, anonymize_directory
from deidstream.config import (
    MODES,
    PRESETS,
    SHAPES,
    AnonymizerConfig,
    DetectorConfig,
    EncoderConfig,
    PipelineConfig,
    TrackerConfig,
)
from deidstream.errors import DeidstreamError
from deidstream.report import RunReport
from deidstream.stream.source import VideoInfo

log = logging.getLogger("deidstream")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    d_det, d_trk, d_anon, d_enc = DetectorConfig(), TrackerConfig(), AnonymizerConfig(), EncoderConfig()
    p = argparse.ArgumentParser(
        prog="deidstream",
        description="Anonymise every face in a video file, or in every video of a folder. "
                    "'deidstream evaluate ORIGINAL ANONYMISED' measures the result.",
    )
    p.add_argument("input", type=Path, help="input video file, or a folder of videos")
    p.add_argument("output", type=Path, help="output video file (.mp4, .mkv, .mov), or a folder for folder input")
    g = p.add_argument_group("anonymisation")
    g.add_argument("--mode", choices=MODES, default=d_anon.mode, help="how faces are hidden (default: %(default)s)")
    g.add_argument("--shape", choices=SHAPES, default=d_anon.shape, help="region shape (default: %(default)s)")
    g.add_argument("--margin", type=float, default=d_anon.margin,
                   help="extra region around each face box, fraction of its size (default: %(default)s)")
    g.add_argument("--strength", type=int, default=d_anon.strength,
                   help="cells across a face kept by blur/pixelate; fewer hides more (default: %(default)s)")
    g = p.add_argument_group("detection and tracking")
    g.add_argument("--threshold", type=float, default=d_det.threshold,
                   help="minimum face detection score; lower finds more faces (default: %(default)s)")
    g.add_argument("--full-range-every", type=int, default=d_det.full_range_every, metavar="N",
                   help="run the full-range model on every N-th frame; 1 is most thorough, 2 is "
                        "faster and back-fills new faces one frame (default: %(default)s)")
    g.add_argument("--tile-size", type=int, default=d_det.tile_size,
                   help="tile frames larger than this for small faces; 0 turns tiling off (default: %(default)s)")
    g.add_argument("--max-coast", type=int, default=d_trk.max_coast,
                   help="frames a lost face stays covered at its predicted place (default: %(default)s)")
    g = p.add_argument_group("output")
    g.add_argument("--crf", type=int, default=d_enc.crf,
                   help="H.264 quality, 0-51, lower is better (default: %(default)s)")
    g.add_argument("--preset", choices=PRESETS, default=d_enc.preset, help="x264 speed preset (default: %(default)s)")
    g.add_argument("--lossless", action="store_true", help="write lossless RGB H.264 (exact pixels, large files)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("--report", type=Path, metavar="R.json",
                   help="write per-track frame spans and per-frame face counts as JSON")
    g = p.add_argument_group("messages")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    g.add_argument("-v", "--verbose", action="store_true", help="log details")
    p.add_argument("--version", action="version", version=f"deidstream {__version__}")
    return p


def config_from_args(args: argparse.Namespace) -> PipelineConfig:
    return PipelineConfig(
        detector=DetectorConfig(threshold=args.threshold, tile_size=args.tile_size,
                                full_range_every=args.full_range_every),
        tracker=TrackerConfig(max_coast=args.max_coast,
                              max_coast_tentative=min(TrackerConfig().max_coast_tentative, args.max_coast)),
        anonymizer=AnonymizerConfig(mode=args.mode, shape=args.shape, margin=args.margin, strength=args.strength),
        encoder=EncoderConfig(crf=args.crf, preset=args.preset, lossless=args.lossless),
    )


class _Progress:
    """A tqdm bar per file on stderr: frames, fps, ETA."""

    def __init__(self, enabled: bool) -> None:
        self.enabled = enabled
        self.bar = None

    def __call__(self, info: VideoInfo | None, done: int) -> None:
        if not self.enabled:
            return
        if info is not None:
            from tqdm import tqdm

            self.close()
            self.bar = tqdm(total=info.frame_count or None, desc=info.path.name, unit="frame",
                            dynamic_ncols=True, leave=True, file=sys.stderr)
            return
        if self.bar is not None:
            self.bar.update(done - self.bar.n)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None


def _print_summary(reports: list[RunReport]) -> None:
    for r in reports:
        print(r.summary(), file=sys.stderr)
    if len(reports) > 1:
        frames = sum(r.frames for r in reports)
        seconds = sum(r.seconds for r in reports)
        print(f"{len(reports)} files, {frames} frames, {sum(r.faces for r in reports)} faces covered, "
              f"{frames / seconds if seconds else 0:.1f} fps", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        from deidstream.evaluation.command import run

        return run(argv[1:])
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="deidstream: %(levelname)s: %(message)s")
    progress = _Progress(enabled=not args.quiet)
    failures: list[tuple[Path, Exception]] = []
    try:
        config = config_from_args(args)
        if args.input.is_dir():
            if args.report:
                log.warning("--report is written per file only; ignored for folder input")
            reports = anonymize_directory(args.input, args.output, config=config, overwrite=args.overwrite,
                                          progress=progress, on_error=lambda p, e: failures.append((p, e)))
        else:
            reports = [anonymize(args.input, args.output, config=config, overwrite=args.overwrite,
                                 report_path=args.report, progress=progress)]
    except KeyboardInterrupt:
        progress.close()
        print("deidstream: interrupted; no output written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except DeidstreamError as exc:
        progress.close()
        print(f"deidstream: error: {exc}", file=sys.stderr)
        return EXIT_ERROR
    except Exception as exc:  # noqa: BLE001 - an unexpected failure still ends cleanly, output discarded
        progress.close()
        log.debug("unexpected failure", exc_info=True)
        print(f"deidstream: error: {type(exc).__name__}: {exc} (no output written; -v shows details)",
              file=sys.stderr)
        return EXIT_ERROR
    progress.close()
    for path, exc in failures:
        print(f"deidstream: error: {path}: {exc}", file=sys.stderr)
    if not args.quiet:
        _print_summary(reports)
    return EXIT_ERROR if failures else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
