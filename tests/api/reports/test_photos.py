"""Photos are made safe on arrival: EXIF (with GPS) gone, faces blurred, size and decode checks,
decompression bombs refused before decoding; stored in the object store and served by media_url."""

from __future__ import annotations

import io
import struct
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from fastapi.testclient import TestClient
from PIL import Image

from api.reports import ReportDesk
from api.reports.photo import PhotoRejected, make_safe
from events.redaction import FaceRedactor
from tests.api.reports.support import OPEN311, file_report, has_exif, jpeg_with_gps, make_desk
from tests.api.support import Parts

LIMITS = {"max_bytes": 5_000_000, "max_pixels": 40_000_000, "max_side": 1600}


def test_a_jpeg_with_gps_comes_back_through_media_url_without_any_exif(
    parts: Parts, public: TestClient, desk: ReportDesk
) -> None:
    original = jpeg_with_gps()
    assert has_exif(original)
    with Image.open(io.BytesIO(original)) as im:
        assert im.getexif().get_ifd(0x8825)  # the GPS block is really there
    r = file_report(public, photo=original)
    assert r.status_code == 201, r.text
    rid = r.json()[0]["service_request_id"]
    (req,) = public.get(f"{OPEN311}/requests/{rid}.json").json()
    media = req["media_url"]
    assert media.startswith("http://testserver/open311/v2/media/") and media.endswith(".jpg")
    served = public.get(media)
    assert served.status_code == 200 and served.headers["content-type"] == "image/jpeg"
    assert not has_exif(served.content)
    assert b"Resident Phone" not in served.content and b"PhoneMaker" not in served.content
    with Image.open(io.BytesIO(served.content)) as im:
        assert im.format == "JPEG" and im.size == (320, 240)
    # Stored in the object store under reports/, the bytes that were served.
    report = desk.store.get(int(rid))
    assert report is not None and report.media_key.startswith("reports/")
    assert parts.objects.get(report.media_key) == served.content
    assert public.get(f"{OPEN311}/media/{'0' * 24}.jpg").status_code == 404


def test_faces_are_blurred_before_anyone_sees_the_photo(models_dir: Path, shared_dir: Path) -> None:
    redactor = FaceRedactor(models_dir / "face_detection_yunet.onnx")
    data = (shared_dir / "images" / "zidane.jpg").read_bytes()
    before = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    faces = redactor.faces(before)
    assert len(faces) >= 2  # the picture has two faces YuNet finds
    safe = make_safe(data, redactor=redactor, **LIMITS)
    after = cv2.imdecode(np.frombuffer(safe, np.uint8), cv2.IMREAD_COLOR)
    assert after.shape == before.shape
    assert len(redactor.faces(after)) == 0  # YuNet finds no face left
    for x1, y1, x2, y2 in faces.astype(int):
        region = (slice(max(0, y1), y2), slice(max(0, x1), x2))
        changed = np.abs(after[region].astype(np.float64) - before[region]).mean()
        assert changed > 5, changed  # the face region was replaced, not just re-encoded
    outside = (slice(0, 40), slice(0, 300))  # a corner without faces: only JPEG noise
    assert np.abs(after[outside].astype(np.float64) - before[outside]).mean() < 4


def _png_header_bomb(width: int, height: int) -> bytes:
    """A small PNG that declares a huge picture (a decompression bomb: zeros compress ~1000:1)."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    row = b"\x00" + b"\x00" * width  # filter byte + one grey byte per pixel
    raw = zlib.compress(row * 64, 9)  # enough rows to look real; the header is what counts
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0))
        + chunk(b"IDAT", raw)
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize(
    ("data", "kind"),
    [
        (b"\xff\xd8\xff\xe0 this is not really a jpeg", "not_an_image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'/>", "not_an_image"),
        (b"", "not_an_image"),
        (_png_header_bomb(30_000, 30_000), "too_many_pixels"),  # past Pillow's own guard
        (_png_header_bomb(8_000, 8_000), "too_many_pixels"),  # past ours (40 MP)
        (b"\x00" * 5_000_001, "too_large"),
    ],
)
def test_photos_that_are_refused(data: bytes, kind: str) -> None:
    with pytest.raises(PhotoRejected) as err:
        make_safe(data, redactor=None, **LIMITS)
    assert err.value.kind == kind


def test_a_bomb_is_refused_from_its_header_without_decoding(models_dir: Path) -> None:
    bomb = _png_header_bomb(60_000, 60_000)  # 3.6 gigapixels, a few hundred kB
    assert len(bomb) < 200_000
    started = time.perf_counter()
    with pytest.raises(PhotoRejected):
        make_safe(bomb, redactor=None, **LIMITS)
    assert time.perf_counter() - started < 0.5


def test_refusals_over_http(parts: Parts) -> None:
    desk = make_desk(parts, max_photo_mb=1)
    with TestClient(parts.app(reports=desk)) as c:
        big = file_report(c, photo=b"\xff\xd8" + b"\x00" * 1_100_000)
        assert big.status_code == 413 and big.json()[0]["error"] == "photo_too_large"
        fake = file_report(c, photo=b"GIF89a not a gif at all")
        assert fake.status_code == 400 and fake.json()[0]["error"] == "photo_not_an_image"
    assert desk.store.search() == []  # nothing stored for a refused report


def test_big_photos_are_shrunk_and_turned_upright() -> None:
    image = Image.fromarray(np.random.default_rng(0).integers(0, 255, (300, 4000, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[0x0112] = 6  # Orientation: rotate 90° to show
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes())
    out = make_safe(buf.getvalue(), redactor=None, **LIMITS)
    with Image.open(io.BytesIO(out)) as im:
        assert im.size == (120, 1600)  # upright (portrait) and at most 1600 long
        assert not im.getexif()
