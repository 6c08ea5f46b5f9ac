"""What keeping a camera's packets for clips costs: time per packet on the decode thread, and memory.

    python -m benchmarks.packet_ring --video ../shared/footage/pedestrians_plaza_overhead_1280x720_h264.mp4

Demuxes the file once (the packets FFmpeg hands the decode loop), then pushes them through a
:class:`ingest.packet_ring.PacketRing` sized like a camera's default (pre-roll 5 s + slack 5 s)
``--repeats`` times, looping the file's packets to ``--seconds`` of video. Same run, for scale:
the time to decode one of those packets. Memory: the payload the ring holds at the end (what
``max_bytes`` bounds) and the Python objects that keep it (tracemalloc; FFmpeg's packet
buffers themselves are allocated outside Python, so they are the payload figure).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from pathlib import Path

import av

from ingest.packet_ring import PacketRing
from pipeline.clips import RING_SLACK_S
from pipeline.config import ClipConfig


def _packets(video: Path) -> tuple[list[av.Packet], av.video.stream.VideoStream, av.container.InputContainer]:
    container = av.open(str(video))
    stream = container.streams.video[0]
    return [p for p in container.demux(stream) if p.size], stream, container


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--video", type=Path, required=True)
    parser.add_argument("--seconds", type=float, default=60.0, help="video pushed per repeat")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)

    packets, stream, container = _packets(args.video)
    fps = float(stream.average_rate or 25)
    count = int(args.seconds * fps)
    window = ClipConfig().pre_roll_s + RING_SLACK_S
    max_bytes = int(ClipConfig().buffer_mb * 2**20)

    per_packet: list[float] = []
    ring = PacketRing("bench", seconds=window, max_bytes=max_bytes)
    for _ in range(args.repeats):
        ring = PacketRing("bench", seconds=window, max_bytes=max_bytes)
        ring.begin(stream)
        # One session per pass over the file; the ring sees each pass as a reconnect.
        t0 = time.perf_counter()
        pushed = 0
        while pushed < count:
            for packet in packets[: count - pushed]:
                ring.push(packet)
            pushed += min(len(packets), count - pushed)
            if pushed < count:
                ring.begin(stream)
        per_packet.append((time.perf_counter() - t0) / count)

    tracemalloc.start()
    held = PacketRing("bench", seconds=window, max_bytes=max_bytes)
    held.begin(stream)
    for packet in packets:
        held.push(packet)
    python_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    decode_s = []
    codec = stream.codec_context
    for packet in packets[:250]:
        t0 = time.perf_counter()
        codec.decode(packet)
        decode_s.append(time.perf_counter() - t0)
    container.close()

    seconds_held = (held.newest or 0) - (held.oldest or 0)
    print(f"video: {args.video.name} {codec.width}x{codec.height} {fps:g} fps, {len(packets)} packets")
    print(
        f"push: median {statistics.median(per_packet) * 1e6:.2f} us/packet "
        f"(min {min(per_packet) * 1e6:.2f}, {args.repeats} x {count} packets)"
    )
    print(
        f"decode (same run, for scale): median {statistics.median(decode_s) * 1e6:.0f} us/packet; "
        f"push / decode = {statistics.median(per_packet) / statistics.median(decode_s):.4f}"
    )
    print(
        f"held after the whole file: {held.stats.packets} packets, {seconds_held:.1f} s from the oldest "
        f"keyframe, payload {held.stats.bytes / 2**20:.2f} MiB "
        f"({held.stats.bytes / 2**20 / max(seconds_held, 1e-9) * 10:.2f} MiB per 10 s), "
        f"Python objects {python_bytes / 2**10:.0f} KiB"
    )


if __name__ == "__main__":
    main()
