"""The ``deidstream`` command: ``deidstream IN OUT [options]``, for files, folders and live sources."""

from __future__ import annotations

import argparse
import gc
import logging
import sys
from functools import partial
from pathlib import Path

from deidstream.api import anonymize, anonymize_directory, relay
from deidstream.cli.options import (
    build_parser,
    config_from_args,
    generator_config,
    is_live,
    live_config_from_args,
    ray_job,
)
from deidstream.cli.progress import ProgressBar, print_summary
from deidstream.cluster import anonymize_directory_on_ray, anonymize_on_ray
from deidstream.config import LiveSourceConfig
from deidstream.errors import ConfigError, DeidstreamError
from deidstream.stream.live_source import is_live_url, webcam_index

__all__ = ["build_parser", "config_from_args", "console", "generator_config", "live_config_from_args", "main"]

log = logging.getLogger("deidstream")

EXIT_OK, EXIT_ERROR, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def _run_live(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """A live relay until the source gives up, --duration passes or Ctrl-C; recordings are finalised."""
    from deidstream.pipelines.live import LIVE_MODES
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
    if argv[:1] == ["build-donors"]:
        from deidstream.modelbuild.donors import run as build_donors

        return build_donors(argv[1:])
    if argv[:1] == ["build-mapper"]:
        from deidstream.modelbuild.mapper_command import run as build_mapper

        return build_mapper(argv[1:])
    if argv[:1] == ["relay"]:
        from deidstream.cluster.command import run as relay_cameras

        return relay_cameras(argv[1:])
    if argv[:1] == ["export"]:
        from deidstream.export.command import run as export

        return export(argv[1:])
    if argv[:1] == ["build-model"]:
        from deidstream.modelbuild.command import run as build_model

        return build_model(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="deidstream: %(levelname)s: %(message)s")
    if is_live(args):
        if args.ray is not None or args.workers is not None or args.segment_s is not None:
            parser.error("--ray, --workers and --segment-s take files or folders; a live source runs on this machine")
        return _live_main(args, parser)
    return _files_main(args, parser)


def _live_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
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


def _check_file_usage(args: argparse.Namespace, parser: argparse.ArgumentParser) -> None:
    """Flags that do not go with a file or folder input are usage errors (exit 2), before anything runs."""
    if args.input is None or args.output is None:
        parser.error("give an input and an output (or a live input: rtsp://..., /dev/videoN, --webcam N)")
    for flag in ("record", "segment", "duration", "give_up_after"):
        if getattr(args, flag) is not None:
            parser.error(f"--{flag.replace('_', '-')} is for live inputs (rtsp://, /dev/videoN, --webcam N)")
    if args.virtual_camera or args.preview:
        parser.error("--virtual-camera and --preview are for live inputs (rtsp://, /dev/videoN, --webcam N)")
    args.input, args.output = Path(args.input), Path(args.output)
    if args.workers is not None and args.ray is None:
        parser.error("--workers sizes a local Ray instance: give it with --ray")
    if args.segment_s is not None and (args.ray is None or args.segment_s < 0):
        parser.error("--segment-s takes seconds (>= 0) and goes with --ray")
    if args.workers is not None and args.ray != "":
        parser.error("--workers sizes a local Ray instance (--ray with no ADDRESS); a cluster has its own")
    if args.ray is not None and args.save_book is not None:
        parser.error("--save-book runs on this machine, not with --ray")


def _files_main(args: argparse.Namespace, parser: argparse.ArgumentParser) -> int:
    """A file or a folder: exit status 0, 1 (an error; no output left behind) or 130 (interrupted)."""
    _check_file_usage(args, parser)
    progress = ProgressBar(enabled=not args.quiet)
    failures: list[tuple[Path, Exception]] = []
    try:
        config = config_from_args(args)
        keep = None
        if args.keep:
            if config.generator is None:
                parser.error("--keep needs --mode surrogate (people are recognised there)")
            from deidstream.tracking.eid import EidRecognizer
            from deidstream.tracking.keep import KeepList

            keep = KeepList.from_photos(args.keep, EidRecognizer(config.generator.eid)).matches
        if args.save_book is not None and (config.generator is None or args.input.is_dir()):
            parser.error("--save-book needs --mode surrogate and a single input file")
        if args.input.is_dir():
            if args.report:
                log.warning("--report is written per file only; ignored for folder input")
            run = anonymize_directory if args.ray is None else partial(anonymize_directory_on_ray, job=ray_job(args))
            reports = run(args.input, args.output, config=config, overwrite=args.overwrite, progress=progress,
                          on_error=lambda p, e: failures.append((p, e)), keep=keep)
        elif args.ray is not None:
            reports = [anonymize_on_ray(args.input, args.output, config=config, overwrite=args.overwrite,
                                        report_path=args.report, progress=progress, keep=keep, job=ray_job(args))]
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
        message = str(exc) if str(path) in str(exc) else f"{path}: {exc}"
        print(f"deidstream: error: {message}", file=sys.stderr)
    if not args.quiet:
        print_summary(reports)
    return EXIT_ERROR if failures else EXIT_OK


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
