"""A real RTSP camera stand-in for the ingest tests: GStreamer's RTSP server on 127.0.0.1.

Run it with Debian's interpreter (``/usr/bin/python3``): the ``gi`` bindings are not in the venv.

    /usr/bin/python3 tests/ingest/rtsp_server.py --port 0 \
        --mount cam1=/tmp/a.mp4 --mount door=/tmp/b.mp4 --auth door=admin:s3cret

Mount specs:
  * ``NAME=FILE.mp4`` / ``.mov``: H.264 passed through, no re-encode (about 1.5 % CPU per stream);
  * ``NAME=FILE.ts`` / ``.mkv``: H.264 in MPEG-TS / Matroska, passed through as well (a TS file may
    change resolution mid-stream; with ``config-interval=-1`` the new SPS/PPS go with every IDR);
  * ``NAME=audiotest``: a live audio-only stream (a "camera" that sends no video).

``--auth NAME=USER:PASS`` makes a mount require HTTP basic credentials; other mounts stay anonymous.
``--port 0`` binds a free port. Once listening the server prints ``READY <port>`` on stdout.
SIGTERM/SIGINT stop it; SIGUSR1 drops every connected client (the camera "reboots" its sessions
without losing its socket). Files play once: loop them beforehand with ffmpeg ``-stream_loop``.
"""

from __future__ import annotations

import argparse
import signal
import sys
from pathlib import Path

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

ANONYMOUS_ROLE = "anonymous"


def launch_line(spec: str) -> str:
    if spec == "audiotest":
        return (
            "( audiotestsrc is-live=true ! audioconvert ! audio/x-raw,rate=8000,channels=1"
            " ! rtpL16pay name=pay0 pt=97 )"
        )
    path = Path(spec)
    if not path.is_file():
        raise SystemExit(f"rtsp_server: no such file: {spec}")
    demux = {".mp4": "qtdemux", ".mov": "qtdemux", ".ts": "tsdemux", ".mkv": "matroskademux"}.get(
        path.suffix.lower()
    )
    if demux is None:
        raise SystemExit(f"rtsp_server: unsupported file type (transcode to H.264 mp4 first): {spec}")
    # Passthrough: no decode, no re-encode; SPS/PPS repeated with every IDR so late joiners
    # (and reconnecting clients) can start at the next keyframe.
    return (
        f'( filesrc location="{path}" ! {demux} ! h264parse config-interval=-1 ! rtph264pay name=pay0 pt=96 )'
    )


def parse_pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise SystemExit(f"rtsp_server: bad --{what} {value!r}, expected NAME=VALUE")
        out[name] = rest
    return out


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--mount", action="append", default=[], metavar="NAME=SPEC")
    parser.add_argument("--auth", action="append", default=[], metavar="NAME=USER:PASS")
    args = parser.parse_args()
    mounts = parse_pairs(args.mount, "mount")
    auths = parse_pairs(args.auth, "auth")
    unknown = set(auths) - set(mounts)
    if unknown:
        raise SystemExit(f"rtsp_server: --auth for unknown mounts {sorted(unknown)}")

    Gst.init(None)
    server = GstRtspServer.RTSPServer()
    server.set_address("127.0.0.1")
    server.set_service(str(args.port))

    auth = GstRtspServer.RTSPAuth()
    # Clients without credentials get the anonymous role; only open mounts grant it.
    anonymous = GstRtspServer.RTSPToken()
    anonymous.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, ANONYMOUS_ROLE)
    auth.set_default_token(anonymous)

    mount_points = server.get_mount_points()
    for name, spec in mounts.items():
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch_line(spec))
        factory.set_shared(True)
        role = ANONYMOUS_ROLE
        if name in auths:
            user, sep, password = auths[name].partition(":")
            if not sep:
                raise SystemExit(f"rtsp_server: bad --auth for {name}, expected USER:PASS")
            role = f"role-{name}"
            token = GstRtspServer.RTSPToken()
            token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, role)
            auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
        permissions = GstRtspServer.RTSPPermissions()
        permissions.add_permission_for_role(role, "media.factory.access", True)
        permissions.add_permission_for_role(role, "media.factory.construct", True)
        if role != ANONYMOUS_ROLE:
            # Anonymous may *see* the mount but not construct it: the server answers 401 with
            # WWW-Authenticate (so the client retries with its credentials), not 404.
            permissions.add_permission_for_role(ANONYMOUS_ROLE, "media.factory.access", True)
            permissions.add_permission_for_role(ANONYMOUS_ROLE, "media.factory.construct", False)
        factory.set_permissions(permissions)
        mount_points.add_factory(f"/{name}", factory)
    server.set_auth(auth)

    loop = GLib.MainLoop()
    if server.attach(None) == 0:
        print(f"rtsp_server: cannot listen on 127.0.0.1:{args.port}", file=sys.stderr, flush=True)
        return 2

    def quit_loop() -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    def drop_clients() -> bool:
        server.client_filter(lambda _server, _client: GstRtspServer.RTSPFilterResult.REMOVE)
        return GLib.SOURCE_CONTINUE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, quit_loop)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGUSR1, drop_clients)
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
