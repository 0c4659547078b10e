"""The command line's options and the run configuration they make (presets from ``deidstream.config``)."""

from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path

from deidstream import __version__
from deidstream.cluster import RayJob
from deidstream.cluster.archive import SEGMENT_S
from deidstream.config import (
    CHOOSERS,
    DEFAULT_MODE,
    DEFAULT_TAU,
    EID_BACKENDS,
    FALLBACK_MODES,
    LIVE_PRIVACY,
    MODES,
    PRESETS,
    PRIVACY_PRESETS,
    RTSP_TRANSPORTS,
    SHAPES,
    AnonymizerConfig,
    DetectorConfig,
    EidConfig,
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
from deidstream.errors import ConfigError
from deidstream.stream.live_source import is_live_url, webcam_index


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="deidstream",
        description="Anonymise every face in a video file, in every video of a folder, or in a live source "
                    "(rtsp:// camera, webcam). 'deidstream evaluate ORIGINAL ANONYMISED' measures the result; "
                    "'deidstream export --out DIR' writes its networks as ONNX files.",
    )
    p.add_argument("input", nargs="?", help="input video file, folder of videos, rtsp:// URL or /dev/videoN")
    p.add_argument("output", nargs="?",
                   help="output video file (.mp4, .mkv, .mov), folder for folder input, or for a live input "
                        "an rtsp:// URL to publish to (or a file to record)")
    _anonymisation_options(p)
    _detection_options(p)
    _output_options(p)
    _live_options(p)
    _scale_options(p)
    _message_options(p)
    p.add_argument("--version", action="version", version=f"deidstream {__version__}")
    return p


def _anonymisation_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("anonymisation")
    d_anon = AnonymizerConfig()
    g.add_argument("--mode", choices=MODES, default=DEFAULT_MODE,
                   help="how faces are hidden: 'surrogate' renders a generated identity per person (two passes "
                        "over a file; the fallback where that is not safe), the others hide every face "
                        "(default: %(default)s)")
    g.add_argument("--fallback", choices=FALLBACK_MODES, default=d_anon.mode,  # blur
                   help="with --mode surrogate: how faces the generator does not render are hidden "
                        "(default: %(default)s)")
    g.add_argument("--identity-key", default=None, metavar="TEXT",
                   help="with --mode surrogate: secret that makes surrogates reproducible (same key, same person: "
                        "the same surrogate in any file or run, picked by their face, not their order); default: a "
                        "random key per run. Never printed.")
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
    g.add_argument("--chooser", choices=CHOOSERS, default=GeneratorConfig().chooser,
                   help="with --mode surrogate: who picks each person's donor: mapper (M_c proposes donors in order, "
                        "the first verified at tau is kept; fast) or search (the keyed search judges up to "
                        f"{GeneratorConfig().explore} donors and keeps the best fit)")
    g.add_argument("--eid-backend", choices=EID_BACKENDS, default=EidConfig().backend,
                   help="with --mode surrogate: what runs E_id, the face descriptor network (default: %(default)s, "
                        "faster on CPU; its ONNX file is built once into the user's cache)")
    g.add_argument("--providers", nargs="+", default=list(EidConfig().providers), metavar="NAME",
                   help="with --eid-backend onnxruntime: execution providers in order: cpu, cuda, tensorrt or "
                        "onnxruntime's names (default: %(default)s); an unavailable one is an error")
    g.add_argument("--shape", choices=SHAPES, default=d_anon.shape, help="region shape (default: %(default)s)")
    g.add_argument("--margin", type=float, default=d_anon.margin,
                   help="extra region around each face box, fraction of its size (default: %(default)s)")
    g.add_argument("--strength", type=int, default=d_anon.strength,
                   help="cells across a face kept by blur/pixelate; fewer hides more (default: %(default)s)")


def _detection_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("detection and tracking")
    d_det = DetectorConfig()
    d_trk = TrackerConfig()
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


def _output_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("output")
    d_enc = EncoderConfig()
    d_live = LiveConfig()
    g.add_argument("--crf", type=int, default=None,
                   help=f"H.264 quality, 0-51, lower is better (default: {d_enc.crf}; live: {d_live.crf})")
    g.add_argument("--preset", choices=PRESETS, default=None,
                   help=f"x264 speed preset (default: {d_enc.preset}; live: {d_live.preset})")
    g.add_argument("--lossless", action="store_true", help="write lossless RGB H.264 (exact pixels, large files)")
    g.add_argument("--overwrite", action="store_true", help="replace an existing output file")
    g.add_argument("--report", type=Path, metavar="R.json",
                   help="write per-track frame spans and per-frame face counts as JSON")


def _live_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("live (rtsp:// or webcam input)")
    d_live = LiveConfig()
    d_src = LiveSourceConfig()
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


def _scale_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("scale-out (files and folders)")
    g.add_argument("--ray", nargs="?", const="", default=None, metavar="ADDRESS",
                   help="run each file as Ray tasks, a long one split into segments run in parallel: on the Ray "
                        "cluster at ADDRESS (host:port, or 'auto'), or on a local Ray instance when none is given; "
                        "needs 'deidstream[ray]'")
    g.add_argument("--workers", type=int, default=None, metavar="N",
                   help="with --ray and no ADDRESS: tasks run at once (default: one per CPU)")
    g.add_argument("--segment-s", type=float, default=None, metavar="SECONDS",
                   help=f"with --ray: split a file longer than 1.5 x SECONDS into segments of about SECONDS "
                        f"(default {SEGMENT_S:g}; 0: never split)")


def _message_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("messages")
    g.add_argument("-q", "--quiet", action="store_true", help="no progress bar or summary")
    g.add_argument("-v", "--verbose", action="store_true", help="log details")


def ray_job(args: argparse.Namespace) -> RayJob:
    """Where ``--ray`` runs: the cluster at its ADDRESS, or a local instance of ``--workers`` CPUs."""
    segment_s = SEGMENT_S if args.segment_s is None else (args.segment_s or None)
    return RayJob(address=args.ray or None, workers=args.workers, segment_s=segment_s)


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
        config = live_generator_config(tau=tau, key=_identity_key(args))
    else:
        config = GeneratorConfig(tau=DEFAULT_TAU if tau is None else tau, key=_identity_key(args))
    return dataclasses.replace(config, eid=EidConfig(args.eid_backend, tuple(args.providers)), chooser=args.chooser)


def is_live(args: argparse.Namespace) -> bool:
    return args.webcam is not None or (args.input is not None
                                       and (is_live_url(args.input) or webcam_index(args.input) is not None))


