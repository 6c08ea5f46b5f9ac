"""What keeping a camera's packets for clips costs: time per packet on the decode thread, and memory.

    python -m benchmarks.packet_ring --video ../shared/footage/pedestrians_plaza_overhead_1280x720_h264.mp4

Demuxes the file once (the packets FFmpeg hands the decode loop), then pushes them through a
:class:`ingest.packet_ring.PacketRing` sized like a camera's default (pre-roll 5 s + slack 5 s)
``--repeats`` times, looping the file's packets to ``--seconds`` of video. Same run, for scale:
the time to decode one of those packets. Memory: the payload the ring holds at the end (what
``max_bytes`` bounds) and the Python objects that keep it (tracemalloc; FFmpeg's packet
buffers themselves are allocated outside Python, so they are the payload figure); and the
time to remux what is held into an MP4 (the clip recorder's cost, on its own thread).
"""

from __future__ import annotations

import argparse
import statistics
import time
import tracemalloc
from pathlib import Path

import av

from ingest.packet_ring import PacketRing
from ingest.remux import remux_mp4
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
    begin_s: list[float] = []
    for _ in range(args.repeats):
        ring = PacketRing("bench", seconds=window, max_bytes=max_bytes)
        pushed = 0
        spent = 0.0
        while pushed < count:
            # One session per pass over the file (the ring sees each pass as a reconnect): timed
            # apart, since it happens once per connection, not per packet.
            t0 = time.perf_counter()
            ring.begin(stream)
            begin_s.append(time.perf_counter() - t0)
            batch = packets[: count - pushed]
            t0 = time.perf_counter()
            for packet in batch:
                ring.push(packet)
            spent += time.perf_counter() - t0
            pushed += len(batch)
        per_packet.append(spent / count)

    tracemalloc.start()
    held = PacketRing("bench", seconds=window, max_bytes=max_bytes)
    held.begin(stream)
    for packet in packets:
        held.push(packet)
    python_bytes = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()

    run = held.cut(-1e9, 1e9)
    assert run is not None
    remux_s = []
    for _ in range(5):
        t0 = time.perf_counter()
        mp4 = remux_mp4(run)
        remux_s.append(time.perf_counter() - t0)

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
        f"(min {min(per_packet) * 1e6:.2f}, {args.repeats} x {count} packets); "
        f"begin (once per connection): median {statistics.median(begin_s) * 1e6:.0f} us"
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
    print(
        f"remux of all that held to MP4 (faststart, temp file): "
        f"median {statistics.median(remux_s) * 1e3:.1f} ms, "
        f"{len(mp4) / 2**20:.2f} MiB"
    )


if __name__ == "__main__":
    main()
