"""``deidstream relay --cameras cameras.toml [--ray [ADDRESS]]``: every camera of the file relayed as a Ray actor."""

from __future__ import annotations

import argparse
import logging
import sys
import threading

from deidstream.cluster.archive import RayJob
from deidstream.cluster.cameras import relay_cameras_on_ray
from deidstream.config.cameras import load_cameras
from deidstream.errors import DeidstreamError

log = logging.getLogger(__name__)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="deidstream relay", description="Relay every camera of a cameras file, each "
                                "as a Ray actor (restarted when its process dies), until they give up or Ctrl-C.")
    p.add_argument("--cameras", required=True, metavar="FILE", help="the cameras file (TOML: a [[camera]] table "
                   "each, with name, source and push and/or record; see docs/scale-out.md)")
    p.add_argument("--ray", nargs="?", const="", default="", metavar="ADDRESS",
                   help="the Ray cluster at ADDRESS (host:port or 'auto'); none: a local instance, one CPU per camera")
    p.add_argument("--restarts", type=int, default=2, metavar="N", help="times a camera's dead process is restarted")
    p.add_argument("--overwrite", action="store_true", help="replace recordings that exist")
    p.add_argument("-q", "--quiet", action="store_true", help="no status lines")
    p.add_argument("-v", "--verbose", action="store_true", help="log details")
    return p


def _line(name: str, status: dict) -> str:
    if "error" in status:
        return f"{name}: failed: {status['error']}"
    if status.get("state") == "restarting":
        return f"{name}: restarting"
    sent = sum(status.get("sent", {}).values()) if isinstance(status.get("sent"), dict) else 0
    return (f"{name}: {status.get('frames_in', 0)} frames in, {sent} sent, {status.get('frames_dropped', 0)} dropped, "
            f"{status.get('reconnects', 0)} reconnects" + (", restarted" if status.get("restarted") else ""))


def run(argv: list[str]) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.restarts < 0:
        parser.error("--restarts takes a count >= 0")
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.WARNING,
                        format="deidstream: %(levelname)s: %(message)s")
    stop = threading.Event()

    def show(status: dict[str, dict]) -> None:
        if not args.quiet:
            print("; ".join(_line(name, s) for name, s in status.items()), file=sys.stderr, flush=True)

    try:
        cameras = load_cameras(args.cameras)
        job = RayJob(address=args.ray or None, workers=None if args.ray else len(cameras), retries=args.restarts)
        results = relay_cameras_on_ray(cameras, job=job, overwrite=args.overwrite, on_status=show, stop=stop)
    except KeyboardInterrupt:
        print("deidstream: interrupted; recordings finalised", file=sys.stderr)
        return 130
    except DeidstreamError as exc:
        print(f"deidstream: error: {exc}", file=sys.stderr)
        return 1
    for name, status in results.items():
        print(f"deidstream: {_line(name, status)}", file=sys.stderr)
    return 1 if any("error" in s for s in results.values()) else 0
