"""Helpers of the report tests: a desk over the API tests' parts, photos with EXIF GPS, form posts."""

from __future__ import annotations

import io
from pathlib import Path
from typing import Any

import numpy as np
from PIL import ExifTags, Image

from api.reports import ReportDesk, ReportsConfig
from api.reports.install import default_desk
from events.redaction import FaceRedactor
from tests.api.support import Parts

OPEN311 = "/open311/v2"
# Fields of a GeoReport v2 service request (the standard's names).
REQUEST_FIELDS = {
    "service_request_id", "status", "status_notes", "service_name", "service_code", "description",
    "agency_responsible", "service_notice", "requested_datetime", "updated_datetime", "expected_datetime",
    "address", "address_id", "zipcode", "lat", "long", "media_url",
}  # fmt: skip


def make_desk(parts: Parts, models_dir: Any = None, **config: Any) -> ReportDesk:
    redactor = FaceRedactor(models_dir / "face_detection_yunet.onnx") if models_dir is not None else None
    return default_desk(
        parts.security, parts.store, parts.objects, redactor=redactor, config=ReportsConfig(**config)
    )


def jpeg_with_gps(width: int = 320, height: int = 240, source: Path | None = None) -> bytes:
    """A real JPEG whose EXIF holds a GPS position (Hồ Chí Minh City), a camera model and a time;
    its pixels are ``source``'s (a photo) or noise."""
    if source is not None:
        image = Image.open(source).convert("RGB")
    else:
        rng = np.random.default_rng(3)
        image = Image.fromarray(rng.integers(0, 255, (height, width, 3), dtype=np.uint8))
    exif = Image.Exif()
    exif[ExifTags.Base.Make] = "PhoneMaker"
    exif[ExifTags.Base.Model] = "Resident Phone 12"
    exif[ExifTags.Base.DateTime] = "2026:12:01 20:15:00"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (10.0, 46.0, 30.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (106.0, 42.0, 10.0)
    buf = io.BytesIO()
    image.save(buf, "JPEG", exif=exif.tobytes(), quality=90)
    return buf.getvalue()


def has_exif(data: bytes) -> bool:
    """Any EXIF at all: Pillow's reading, and the raw APP1 'Exif' marker bytes."""
    with Image.open(io.BytesIO(data)) as im:
        found = bool(im.getexif()) or "exif" in im.info
    return found or b"Exif\x00\x00" in data


def file_report(client: Any, photo: bytes | None = None, **fields: Any) -> Any:
    data = {
        "service_code": "security",
        "description": "Có người lạ cạy khóa xe máy trước nhà số 12",
        "address_string": "12 Lê Lợi",
        "khu_pho": "kp1",
        **fields,
    }
    files = {"media": ("photo.jpg", photo, "image/jpeg")} if photo is not None else None
    return client.post(f"{OPEN311}/requests.json", data=data, files=files)
