#!/usr/bin/env python3
"""A loopback RTSP "camera" for tests and benchmarks: GStreamer's RTSP server serving an H.264 mp4 in real time.

Run it with the system Python, which sees Debian's python3-gi (the project's virtual environment does not)::

    /usr/bin/python3 tests/rtsp_camera.py CLIP.mp4 --port 8554 --mount /cam [--tls cert_key.pem [--client-ca ca.pem]]

It prints ``READY rtsp://127.0.0.1:PORT/MOUNT`` (``rtsps://`` with ``--tls``: RTSP over TLS, the
certificate and its key in one PEM file; needs glib-networking; with ``--client-ca`` only clients
showing a certificate from that CA get in) on stdout once it accepts clients, then serves until killed.
Each client gets the clip from its start, paced at its frame rate like a live camera (no B-frames expected).
"""

from __future__ import annotations

import argparse
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import Gio, GLib, Gst, GstRtspServer  # noqa: E402


def tls_auth(pem: str, client_ca: str | None = None) -> GstRtspServer.RTSPAuth:
    """The server's TLS certificate, and every client let in as "anonymous" (an auth object
    otherwise refuses all); with ``client_ca``, only clients whose certificate chains to it."""
    auth = GstRtspServer.RTSPAuth()
    auth.set_tls_certificate(Gio.TlsCertificate.new_from_file(pem))
    if client_ca:
        auth.set_tls_authentication_mode(Gio.TlsAuthenticationMode.REQUIRED)
        auth.set_tls_database(Gio.TlsFileDatabase.new(client_ca))  # an absolute path
        # the server asks even for a certificate the database verified; accept exactly those
        auth.connect("accept-certificate", lambda _auth, _conn, _cert, errors: not errors)
    token = GstRtspServer.RTSPToken()
    token.set_string("media.factory.role", "anonymous")
    auth.set_default_token(token)
    return auth


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("clip", help="an mp4 file with H.264 video")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mount", default="/cam")
    parser.add_argument("--tls", help="serve rtsps:// with this PEM file (certificate and key)")
    parser.add_argument("--client-ca", help="with --tls: admit only clients with a certificate from this CA (PEM)")
    args = parser.parse_args()

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))
    factory = GstRtspServer.RTSPMediaFactory()
    location = args.clip.replace("\\", "\\\\").replace('"', '\\"')
    factory.set_launch(
        f'( filesrc location="{location}" ! qtdemux ! h264parse config-interval=-1 '
        "! rtph264pay name=pay0 pt=96 config-interval=-1 )"
    )
    if args.tls:
        server.set_auth(tls_auth(args.tls, args.client_ca))
        factory.add_role_from_structure(Gst.Structure.from_string(
            "anonymous, media.factory.access=(boolean)true, media.factory.construct=(boolean)true")[0])
    server.get_mount_points().add_factory(args.mount, factory)
    if server.attach(None) == 0:
        print(f"cannot listen on port {args.port}", file=sys.stderr)
        return 1
    scheme = "rtsps" if args.tls else "rtsp"
    print(f"READY {scheme}://127.0.0.1:{args.port}{args.mount}", flush=True)
    GLib.MainLoop().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
