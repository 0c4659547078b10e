"""The ``deidstream`` command: ``deidstream IN OUT [options]``, for files, folders and live sources."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from pathlib import Path

from deidstream import __version__
from deidstream.api import anonymize, anonymize_directory, relay
from deidstream.config import (
    DEFAULT_MODE,
    DEFAULT_TAU,
    FALLBACK_MODES,
    LIVE_PRIVACY,
    MODES,
    PRESETS,
    PRIVACY_PRESETS,
    RTSP_TRANSPORTS,
    SHAPES,
    AnonymizerConfig,
    DetectorConfig,
    EncoderConfig,
    GeneratorConfig,
    LiveConfig,
    LiveSourceConfig,
    PipelineConfig,
    TrackerConfig,
    live_detector_config,
    live_generator_config,
    parse_duration,
)
from deidstream.errors import ConfigError, DeidstreamError
from deidstream.report import RunReport
from deidstream.stream.source import VideoInfo

log = logging.getLogger("deidstream")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def build_parser() -> argparse.ArgumentParser:
    d_det, d_trk, d_anon, d_enc = DetectorConfig(), TrackerConfig(), AnonymizerConfig(), EncoderConfig()
    d_live, d_src = LiveConfig(), LiveSourceConfig()
    p = argparse.ArgumentParser(
        prog="deidstream",
        description="Anonymise every face in a video file, in every video of a folder, or in a live source "
                    "(rtsp:// camera, webcam). 'deidstream evaluate ORIGINAL ANONYMISED' measures the result.",
    )
    p.add_argument("input", nargs="?", help="input video file, folder of videos, rtsp:// URL or /dev/videoN")
    p.add_argument("output", nargs="?",
                   help="output video file (.mp4, .mkv, .mov), folder for folder input, or for a live input "
                        "an rtsp:// URL to publish to (or a file to record)")
    g = p.add_argument_group("anonymisation")
    g.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                   help="how faces are hidden: 'surrogate' renders a generated identity per person (two passes "
                        "over a file; the fallback where that is not safe), the others hide every face "
                        "(default: %(default)s)")
    g.add_argument("--fallback", choices=FALLBACK_MODES, default=d_anon.mode,  # blur
                   help="with --mode surrogate: how faces the generator does not render are hidden "
                        "(default: %(default)s)")
    g.add_argument("--identity-key", default=None, metavar="TEXT",
                   help="with --mode surrogate: secret that makes surrogates reproducible (same key and people, "
                        "same surrogates); default: a random key per run. Never printed.")
    g.add_argument("--key-file", type=Path, default=None, help="read the identity key from this file")
    g.add_argument("--save-book", type=Path, default=None, metavar="BOOK.npz",
                   help="with --mode surrogate: write the people's face embeddings (biometric data) there")
    g.add_argument("--keep", action="append", type=Path, default=[], metavar="PHOTO",
                   help="with --mode surrogate: leave the person in this photo unaltered (repeatable)")
    g.add_argument("--privacy", choices=sorted(PRIVACY_PRESETS), default=None,
                   help="with --mode surrogate: least E_id distance a surrogate keeps from its subject "
                        f"({', '.join(f'{k} {v}' for k, v in PRIVACY_PRESETS.items())})")
    g.add_argument("--tau", type=float, default=None,
                   help=f"with --mode surrogate: that distance as a number (default: {GeneratorConfig().tau} for "
                        f"files, {PRIVACY_PRESETS[LIVE_PRIVACY]} ({LIVE_PRIVACY}) for live inputs)")
    g.add_argument("--shape", choices=SHAPES, default=d_anon.shape, help="region shape (default: %(default)s)")
    g.add_argument("--margin", type=float, default=d_anon.margin,
                   help="extra region around each face box, fraction of its size (default: %(default)s)")
    g.add_argument("--strength", type=int, default=d_anon.strength,
                   help="cells across a face kept by blur/pixelate; fewer hides more (default: %(default)s)")
    g = p.add_argument_group("detection and tracking")
    g.add_argument("--threshold", type=float, default=d_det.threshold,
                   help="minimum face detection score; lower finds more faces (default: %(default)s)")
    g.add_argument("--full-range-every", type=int, default=None, metavar="N",
                   help="run the full-range model on every N-th frame; 1 is most thorough, 2 is "
                        f"faster (default: {d_det.full_range_every}; live: 1)")
    g.add_argument("--tile-size", type=int, default=None,
                   help="tile frames larger than this for small faces; 0 turns tiling off "
                        f"(default: {d_det.tile_size}; live: 0)")
    g.add_argument("--max-coast", type=int, default=d_trk.max_coast,
                   help="frames a lost face stays covered at its predicted place (default: %(default)s)")
    g.add_argument("--backfill", type=int, default=None, metavar="N",
                   help="frames before a face's first detection, within its shot, in which it is also hidden, "
                        f"since detectors can find a face late (default: {d_trk.backfill}; live: 0: a relay holds "
                        "N frames back for it, N frame intervals of latency)")
    g = p.add_argument_group("output")
    g.add_argument("--crf", type=int, default=None,
                   help=f"H.264 quality, 0-51, lower is better (default: {d_enc.crf}; live: {d_live.crf})")
    g.add_argument("--preset", choices=PRESETS, default=None,
                   help=f"x264 speed preset (default: {d_enc.preset}; live: {d_live.preset})")
    g.add_argument("--lossless", action="store_true", help="write lossless RGB H.264 (exact pixels, large files)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("--report", type=Path, metavar="R.json",
                   help="write per-track frame spans and per-frame face counts as JSON")
    g = p.add_argument_group("live (rtsp:// or webcam input)")
    g.add_argument("--webcam", type=int, metavar="N", help="read the webcam /dev/videoN (OpenCV's V4L2 backend)")
    g.add_argument("--width", type=int, help="webcam picture width to ask the driver for")
    g.add_argument("--height", type=int, help="webcam picture height to ask the driver for")
    g.add_argument("--fps", type=float, help="webcam frame rate to ask the driver for")
    g.add_argument("--rtsp-transport", choices=RTSP_TRANSPORTS, default=d_src.rtsp_transport,
                   help="RTSP transport for the camera and the published stream (default: %(default)s)")
    g.add_argument("--camera-ca-file", metavar="PEM",
                   help="verify an rtsps:// camera's TLS certificate against the CA certificates in PEM "
                        "(default: not verified, as in ffmpeg)")
    g.add_argument("--camera-cert-file", metavar="PEM",
                   help="client certificate shown to an rtsps:// camera that admits only known clients (mutual TLS); "
                        "with --camera-key-file")
    g.add_argument("--camera-key-file", metavar="PEM", help="the private key of --camera-cert-file")
    g.add_argument("--record", metavar="FILE", help="also record the anonymised stream to FILE (.mp4, .mkv)")
    g.add_argument("--segment", type=parse_duration, metavar="DURATION",
                   help="record in segments of about DURATION (e.g. 10m, 90s): FILE_0000.mp4, FILE_0001.mp4, ...; "
                        "each is complete on disk before the next starts")
    g.add_argument("--virtual-camera", action="store_true",
                   help="show the anonymised stream as a virtual camera (pyvirtualcam; needs 'deidstream[live]' "
                        "and v4l2loopback on Linux, OBS on Windows/macOS)")
    g.add_argument("--preview", action="store_true", help="show the anonymised stream in a window (q closes)")
    g.add_argument("--budget", type=float, default=d_live.budget_ms, metavar="MS",
                   help="a frame's faces must be processed within MS of its capture; faces over budget get "
                        "the fallback blur (default: %(default)s)")
    g.add_argument("--give-up-after", type=parse_duration, metavar="DURATION",
                   help="stop when the source has been gone this long (default: keep reconnecting)")
    g.add_argument("--duration", type=parse_duration, metavar="DURATION", help="stop after this long")
    g = p.add_argument_group("messages")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    g.add_argument("-v", "--verbose", action="store_true", help="log details")
    p.add_argument("--version", action="version", version=f"deidstream {__version__}")
    return p


def _given(value: object, default: object) -> object:
    return default if value is None else value


def live_config_from_args(args: argparse.Namespace) -> LiveConfig:
    """A live run's scheduling and encoder settings."""
    d_live = LiveConfig()
    return LiveConfig(budget_ms=args.budget, max_latency_ms=max(d_live.max_latency_ms, args.budget),
                      preset=_given(args.preset, d_live.preset), crf=_given(args.crf, d_live.crf),
                      hold_frames=_given(args.backfill, d_live.hold_frames))


def config_from_args(args: argparse.Namespace, *, live: bool = False) -> PipelineConfig:
    """The run's configuration: the file presets, or the live ones (``config.live_detector_config``)."""
    d_det, d_enc = DetectorConfig(), EncoderConfig()
    if live:
        detector = live_detector_config(threshold=args.threshold, tile_size=args.tile_size,
                                        full_range_every=args.full_range_every)
    else:
        detector = DetectorConfig(threshold=args.threshold, tile_size=_given(args.tile_size, d_det.tile_size),
                                  full_range_every=_given(args.full_range_every, d_det.full_range_every))
    return PipelineConfig(
        detector=detector,
        tracker=TrackerConfig(max_coast=args.max_coast, backfill=_given(args.backfill, TrackerConfig().backfill),
                              max_coast_tentative=min(TrackerConfig().max_coast_tentative, args.max_coast)),
        anonymizer=AnonymizerConfig(mode=args.fallback if args.mode == "surrogate" else args.mode, shape=args.shape,
                                    margin=args.margin, strength=args.strength),
        generator=generator_config(args, live=live) if args.mode == "surrogate" else None,
        encoder=EncoderConfig(crf=_given(args.crf, d_enc.crf), preset=_given(args.preset, d_enc.preset),
                              lossless=args.lossless),
    )


def _identity_key(args: argparse.Namespace) -> bytes | None:
    if args.key_file is not None:
        try:
            key = args.key_file.read_bytes().strip()
        except OSError as exc:
            raise ConfigError(f"{args.key_file}: cannot read the identity key ({exc.strerror})") from None
        if not key:
            raise ConfigError(f"{args.key_file}: the identity key file is empty")
        return key
    return None if args.identity_key is None else args.identity_key.encode()


def generator_config(args: argparse.Namespace, *, live: bool = False) -> GeneratorConfig:
    """``--privacy``/``--tau`` and the key; without them the file or the live default privacy."""
    tau = args.tau if args.tau is not None else PRIVACY_PRESETS[args.privacy] if args.privacy else None
    if live:
        return live_generator_config(tau=tau, key=_identity_key(args))
    return GeneratorConfig(tau=DEFAULT_TAU if tau is None else tau, key=_identity_key(args))


def is_live(args: argparse.Namespace) -> bool:
    from deidstream.stream.live_source import is_live_url, webcam_index

    return args.webcam is not None or (args.input is not None
                                       and (is_live_url(args.input) or webcam_index(args.input) is not None))


def _run_live(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """A live relay until the source gives up, --duration passes or Ctrl-C; recordings are finalised."""
    from deidstream.pipelines.live import LIVE_MODES
    from deidstream.stream.live_source import is_live_url, webcam_index

    if args.webcam is not None and args.output is None and args.input is not None and webcam_index(args.input) is None:
        args.input, args.output = None, args.input  # deidstream --webcam 0 OUT: the one positional is the output
    if args.webcam is not None and args.input is not None:
        parser.error("give either --webcam N or an input, not both")
    source = args.webcam if args.webcam is not None else args.input
    push, record = None, args.record
    if args.output is not None:
        if is_live_url(args.output):
            push = args.output
        elif record is not None:
            parser.error("give the recording either as OUTPUT or as --record, not both")
        else:
            record = args.output
    if args.segment is not None and record is None:
        parser.error("--segment needs a recording (--record FILE or an output file)")
    if not (push or record or args.virtual_camera or args.preview):
        parser.error("a live input needs an output: an rtsp:// URL, a file, --record, --virtual-camera or --preview")
    if args.lossless:
        parser.error("--lossless is for files; live output is H.264 4:2:0")
    if args.mode not in (*LIVE_MODES, "surrogate"):
        raise ConfigError(f"--mode {args.mode} is not available live; live inputs take "
                          f"--mode {', '.join((*LIVE_MODES, 'surrogate'))}")
    config = config_from_args(args, live=True)
    live = live_config_from_args(args)
    source_config = LiveSourceConfig(rtsp_transport=args.rtsp_transport, ca_file=args.camera_ca_file,
                                     cert_file=args.camera_cert_file, key_file=args.camera_key_file,
                                     give_up_after_s=args.give_up_after,
                                     width=args.width, height=args.height, fps=args.fps)
    stats = None
    try:
        stats = relay(source, push=push, record=record, segment_s=args.segment, virtual_camera=args.virtual_camera,
                      preview=args.preview, config=config, live=live, source_config=source_config,
                      overwrite=args.overwrite, duration_s=args.duration,
                      on_start=lambda src: log.info("%s: connected, %s fps", src.name, src.fps))
    except KeyboardInterrupt:
        print("deidstream: interrupted; recordings finalised", file=sys.stderr)
        return EXIT_INTERRUPTED
    if not args.quiet:
        print(f"deidstream: {stats.summary()}", file=sys.stderr)
    return EXIT_OK


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


def console() -> None:
    """The ``deidstream`` command: :func:`main`, then exit without the interpreter's last garbage
    collection, which walks every object MediaPipe, SciPy and matplotlib made at import; files
    are closed and renamed by then."""
    code = main()
    gc.freeze()
    sys.exit(code)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["evaluate"]:
        from deidstream.evaluation.command import run

        return run(argv[1:])
    if argv[:1] == ["build-model"]:
        from deidstream.modelbuild.command import run as build_model

        return build_model(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="deidstream: %(levelname)s: %(message)s")
    if is_live(args):
        try:
            return _run_live(args, parser)
        except KeyboardInterrupt:
            print("deidstream: interrupted", file=sys.stderr)
            return EXIT_INTERRUPTED
        except (DeidstreamError, ValueError) as exc:
            print(f"deidstream: error: {exc}", file=sys.stderr)
            return EXIT_ERROR
        except Exception as exc:  # noqa: BLE001 - an unexpected failure still ends cleanly
            log.debug("unexpected failure", exc_info=True)
            print(f"deidstream: error: {type(exc).__name__}: {exc} (-v shows details)", file=sys.stderr)
            return EXIT_ERROR
    if args.input is None or args.output is None:
        parser.error("give an input and an output (or a live input: rtsp://..., /dev/videoN, --webcam N)")
    for flag in ("record", "segment", "duration", "give_up_after"):
        if getattr(args, flag) is not None:
            parser.error(f"--{flag.replace('_', '-')} is for live inputs (rtsp://, /dev/videoN, --webcam N)")
    if args.virtual_camera or args.preview:
        parser.error("--virtual-camera and --preview are for live inputs (rtsp://, /dev/videoN, --webcam N)")
    args.input, args.output = Path(args.input), Path(args.output)
    progress = _Progress(enabled=not args.quiet)
    failures: list[tuple[Path, Exception]] = []
    try:
        config = config_from_args(args)
        keep = None
        if args.keep:
            if config.generator is None:
                parser.error("--keep needs --mode surrogate (people are recognised there)")
            from deidstream.tracking.keep import KeepList

            keep = KeepList.from_photos(args.keep).matches
        if args.save_book is not None and (config.generator is None or args.input.is_dir()):
            parser.error("--save-book needs --mode surrogate and a single input file")
        if args.input.is_dir():
            if args.report:
                log.warning("--report is written per file only; ignored for folder input")
            reports = anonymize_directory(args.input, args.output, config=config, overwrite=args.overwrite,
                                          progress=progress, on_error=lambda p, e: failures.append((p, e)),
                                          keep=keep)
        else:
            reports = [anonymize(args.input, args.output, config=config, overwrite=args.overwrite,
                                 report_path=args.report, progress=progress, keep=keep, save_book=args.save_book)]
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
