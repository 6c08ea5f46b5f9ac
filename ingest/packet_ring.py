"""The last seconds of a camera's compressed video, kept as demuxed packets for event clips.

The decode loop hands every video packet it demuxes to :meth:`PacketRing.push` (the
``av.Packet`` itself: its buffer is reference-counted by FFmpeg, so keeping it costs no
copy). The ring keeps whole groups of pictures (a keyframe and what follows it up to the
next keyframe), so whatever it holds can be decoded from its first packet, and it keeps
them until the newest packet is ``seconds`` past the *second* keyframe: the oldest
keyframe is then always at or before ``newest - seconds``. ``max_bytes`` bounds memory
whatever the stream does (a camera sending keyframes once a minute, a burst of
bitrate): over it, the oldest group goes even if still wanted (counted in
``overflows``).

A clip recorder :meth:`pin`\\ s a time while an event lasts, which stops eviction of the
group holding that time, and later :meth:`cut`\\ s the packets from the last keyframe at
or before its start up to its end. Packets are never modified; the muxer gets copies.

Times are seconds on the source's own frame timeline (``Frame.pts``, continuous over
reconnects and replay loops), so event times (``Event.start_pts``) select packets
directly. Each decoding session (a connection, a replay loop) is a :class:`PacketSession`
with the stream's codec parameters and the offset from its packet timestamps to that
timeline, which the decode loop reports (:meth:`anchor`) when its first frame is timed.

Thread-safety: ``push`` runs on the camera's reader thread, ``pin``/``cut`` on others;
a lock guards the deque (held for a few appends on the hot path).
"""

from __future__ import annotations

import io
import itertools
import logging
import threading
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

import av
from av.container import OutputContainer
from av.video.stream import VideoStream

log = logging.getLogger(__name__)


class PacketSession:
    """One decoding session's stream: codec parameters for the muxer and its timeline offset.

    ``template`` is a stream holding a copy of the input stream's codec parameters (codec,
    size, extradata such as H.264's SPS/PPS), in an output container that is never written:
    it outlives the input container, which a reconnect closes, and is what the muxer copies
    its stream from.
    """

    def __init__(self, number: int, stream: VideoStream, offset: float) -> None:
        self.number = number
        self.time_base: Fraction = stream.time_base or Fraction(1, 90000)
        self._tick_s = float(self.time_base)  # float: Fraction arithmetic costs microseconds
        codec = stream.codec_context
        self.codec = codec.name
        self.width = codec.width
        self.height = codec.height
        self.extradata = bytes(codec.extradata or b"")
        # An MP4 muxer's stream: what clips are remuxed into, so a codec MP4 cannot carry (MS-MPEG4
        # from an old AVI) is found here, once per connection, rather than at every event.
        self._holder: OutputContainer = av.open(io.BytesIO(), "w", format="mp4")
        self.template: VideoStream | None = None
        self.unsupported: str | None = None
        try:
            self.template = self._holder.add_stream_from_template(stream)
        except (ValueError, av.error.FFmpegError) as exc:
            self.unsupported = f"{self.codec} cannot be stream-copied into MP4 ({exc})"
        self.offset = offset  # provisional until anchored by the decode loop
        self.anchored = False

    def compatible(self, other: PacketSession) -> bool:
        """Whether packets of both sessions can go into one MP4 track (same codec parameters)."""
        return (self.codec, self.width, self.height, self.extradata, self.time_base) == (
            other.codec,
            other.width,
            other.height,
            other.extradata,
            other.time_base,
        )

    def seconds(self, ticks: int) -> float:
        """Frame-timeline seconds of ``ticks`` of this session's time base."""
        return ticks * self._tick_s + self.offset


class RingEntry(NamedTuple):
    """One packet as kept: the packet and the fields read once when it arrived."""

    packet: av.Packet
    pts: int  # presentation time, stream ticks of ``session``
    dts: int  # decode time (= pts when the demuxer gave none), stream ticks
    keyframe: bool
    size: int
    session: PacketSession


@dataclass(frozen=True, slots=True)
class PacketRun:
    """Packets for one clip, in decode order, starting at a keyframe; ``start``/``end`` are the
    timeline seconds of its first keyframe and its last packet."""

    entries: tuple[RingEntry, ...]
    start: float
    end: float

    @property
    def size(self) -> int:
        return sum(e.size for e in self.entries)


@dataclass(slots=True)
class RingStats:
    """Counters of one ring; plain ints, read from other threads."""

    pushed: int = 0  # packets kept
    skipped: int = 0  # packets that could not start a decodable run (no keyframe yet, no time)
    evicted: int = 0  # packets dropped from the old end by age
    overflows: int = 0  # groups dropped because the ring was over ``max_bytes``
    sessions: int = 0
    bytes: int = 0  # payload bytes held now
    packets: int = 0  # packets held now


@dataclass(eq=False)
class PacketRing:
    """See the module docstring. ``seconds``: how far back from the newest packet a keyframe is
    kept; ``max_bytes``: payload bytes held at most, pins or not."""

    camera: str
    seconds: float
    max_bytes: int
    stats: RingStats = field(default_factory=RingStats)

    def __post_init__(self) -> None:
        if self.seconds <= 0 or self.max_bytes <= 0:
            raise ValueError(f"camera {self.camera!r}: ring seconds and max_bytes must be positive")
        self._lock = threading.Lock()
        self._entries: deque[RingEntry] = deque()
        self._keys: deque[tuple[int, RingEntry]] = deque()  # (sequence number, entry) of the keyframes held
        self._first_seq = 0  # sequence number of _entries[0]
        self._next_seq = 0
        self._session: PacketSession | None = None
        self._need_key = True
        self._pins: dict[int, float] = {}
        self._pin_ids = itertools.count(1)
        self.unsupported: str | None = None  # why the current session's packets cannot make clips

    # -- the decode loop's side ------------------------------------------------------------------------

    def begin(self, stream: VideoStream) -> None:
        """A new decoding session (connection, replay loop) starts with this stream: its packets
        are kept from its first keyframe on, since the decoder starts afresh; none at all when MP4
        cannot carry its codec (``unsupported`` says why, logged once)."""
        with self._lock:
            last = self._entries[-1] if self._entries else None
            # Until the decode loop anchors it, place the session just after what is held.
            offset = last.session.seconds(max(last.pts, last.dts)) if last is not None else 0.0
            number = self.stats.sessions = self.stats.sessions + 1
        session = PacketSession(number, stream, offset)  # outside the lock: allocates a container
        if session.unsupported is not None and self.unsupported is None:
            log.warning("camera %r: no event clips: %s", self.camera, session.unsupported)
        self.unsupported = session.unsupported
        with self._lock:
            self._session = session
            self._need_key = True

    def anchor(self, offset: float) -> None:
        """The current session's packet time ``t`` (seconds of its time base) is ``t + offset`` on the
        frame timeline; called once per session, at its first decoded frame."""
        session = self._session
        if session is not None and not session.anchored:
            session.offset = offset
            session.anchored = True

    def push(self, packet: av.Packet) -> None:
        """Keep ``packet`` (one demuxed video packet of the current session). Hot path: a few
        attribute reads, one append and, once per keyframe, eviction."""
        session = self._session
        pts, dts = packet.pts, packet.dts
        if session is None or session.unsupported is not None or (pts is None and dts is None):
            self.stats.skipped += 1
            return
        if dts is None:
            dts = pts
        elif pts is None:
            pts = dts
        keyframe = packet.is_keyframe
        size = packet.size
        stats = self.stats
        with self._lock:
            if self._need_key:
                if not keyframe:
                    stats.skipped += 1
                    return
                self._need_key = False
            seq = self._next_seq
            self._next_seq = seq + 1
            entry = RingEntry(packet, pts, dts, keyframe, size, session)
            self._entries.append(entry)
            stats.pushed += 1
            stats.packets += 1
            stats.bytes += size
            if keyframe:
                self._keys.append((seq, entry))
            keys = self._keys
            if (
                len(keys) >= 2
                and keys[1][1].session.seconds(keys[1][1].pts) <= session.seconds(dts) - self.seconds
            ):
                self._evict_by_age()
            if stats.bytes > self.max_bytes:
                self._evict_by_size()

    # -- eviction (lock held) --------------------------------------------------------------------------

    def _drop_first_group(self) -> None:
        """Drop the packets before the second keyframe (all of them when there is none)."""
        self._keys.popleft()
        end = self._keys[0][0] if self._keys else self._next_seq
        entries, stats = self._entries, self.stats
        for _ in range(end - self._first_seq):
            entry = entries.popleft()
            stats.bytes -= entry.size
            stats.packets -= 1
        self._first_seq = end
        if not self._keys:
            self._need_key = True  # what comes next cannot be decoded without a keyframe

    def _evict_by_age(self) -> None:
        keys = self._keys
        newest = self._entries[-1]
        horizon = newest.session.seconds(newest.dts) - self.seconds
        pinned = min(self._pins.values(), default=None)
        while len(keys) >= 2:
            second = keys[1][1]
            second_t = second.session.seconds(second.pts)
            # The first group goes only if the second keyframe still starts at or before both the
            # horizon and every pinned time: what is wanted stays decodable from a keyframe.
            if second_t > horizon or (pinned is not None and second_t > pinned):
                return
            count = keys[1][0] - self._first_seq
            self._drop_first_group()
            self.stats.evicted += count

    def _evict_by_size(self) -> None:
        while self.stats.bytes > self.max_bytes and self._keys:
            self._drop_first_group()
            self.stats.overflows += 1

    # -- the clip recorder's side ----------------------------------------------------------------------

    @property
    def newest(self) -> float | None:
        """Timeline seconds of the newest packet held (decode time), None when empty."""
        with self._lock:
            if not self._entries:
                return None
            last = self._entries[-1]
            return last.session.seconds(last.dts)

    @property
    def oldest(self) -> float | None:
        """Timeline seconds of the oldest keyframe held, None when empty."""
        with self._lock:
            if not self._entries:
                return None
            first = self._entries[0]
            return first.session.seconds(first.pts)

    def pin(self, at: float) -> int:
        """Keep the group holding time ``at`` (and everything after it) until :meth:`unpin`;
        ``max_bytes`` still applies. Returns the pin's id."""
        with self._lock:
            pin_id = next(self._pin_ids)
            self._pins[pin_id] = at
            return pin_id

    def unpin(self, pin_id: int) -> None:
        with self._lock:
            self._pins.pop(pin_id, None)

    def cut(self, start: float, end: float) -> PacketRun | None:
        """The packets from the last keyframe at or before ``start`` (the oldest keyframe held when
        ``start`` is older than the ring) up to decode time ``end``, within one run of sessions
        with the same codec parameters; None when nothing that old or that new is held."""
        with self._lock:
            entries = list(self._entries)  # references only: pushes may continue meanwhile
            keys = [seq - self._first_seq for seq, _ in self._keys]
        if not keys:
            return None
        first = keys[0]
        for index in keys:
            entry = entries[index]
            if entry.session.seconds(entry.pts) <= start:
                first = index
            else:
                break
        head = entries[first]
        out: list[RingEntry] = []
        for entry in itertools.islice(entries, first, None):
            if entry.session is not head.session and not entry.session.compatible(head.session):
                break  # a reconnect with other codec parameters: the clip ends before it
            if entry.session.seconds(entry.dts) > end:
                break
            out.append(entry)
        if not out:
            return None
        last = out[-1]
        return PacketRun(tuple(out), head.session.seconds(head.pts), last.session.seconds(last.dts))
