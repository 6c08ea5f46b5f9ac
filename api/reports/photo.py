"""Residents' photos made safe on arrival: a size limit, a real decode (never trusting the name or the
declared type), decompression bombs refused from the header before any pixel is decoded, faces blurred,
and a fresh JPEG written from the pixels alone, so no EXIF (GPS, phone model, time) survives.
"""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable

import cv2
import numpy as np
from PIL import Image, ImageOps

from events.storage.snapshot import Redactor

FORMATS = ("JPEG", "PNG", "WEBP")
PeopleFinder = Callable[[np.ndarray], np.ndarray]  # BGR image -> person boxes xyxy [N, 4]


class PhotoRejected(ValueError):
    """A refused photo; ``kind`` (machine-readable): too_large, not_an_image, too_many_pixels."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


def make_safe(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    max_side: int,
    redactor: Redactor | None,
    find_people: PeopleFinder | None = None,
    quality: int = 85,
) -> bytes:
    """A clean JPEG of the photo (upright, at most ``max_side`` pixels long, faces blurred)."""
    if len(data) > max_bytes:
        raise PhotoRejected("too_large", f"the photo is larger than {max_bytes / 1e6:.0f} MB")
    if not data:
        raise PhotoRejected("not_an_image", "the photo is empty")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(io.BytesIO(data)) as im:  # reads the header only
                if im.format not in FORMATS:
                    raise PhotoRejected("not_an_image", "send a JPEG, PNG or WebP photo")
                width, height = im.size
                if width * height > max_pixels or width < 16 or height < 16:
                    raise PhotoRejected(
                        "too_many_pixels",
                        f"the photo must have 16x16 to {max_pixels / 1e6:.0f} million pixels",
                    )
                if getattr(im, "n_frames", 1) > 1:
                    raise PhotoRejected("not_an_image", "send a still photo, not an animation")
                im.draft("RGB", (max_side, max_side))  # JPEG: decode at a reduced scale when it is big
                upright = ImageOps.exif_transpose(im.convert("RGB"))
    except PhotoRejected:
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as exc:
        # Pillow's own guard (from the header, before decoding), for pictures far past ours.
        raise PhotoRejected("too_many_pixels", "the photo has far too many pixels") from exc
    except Exception as exc:
        # UnidentifiedImageError, OSError (truncated), and whatever a decoder raises on hostile bytes
        # (struct.error, EOFError, ...): all are "not a photo", never a server error.
        raise PhotoRejected("not_an_image", "the file is not a photo that can be read") from exc
    rgb = np.asarray(upright)
    image = np.ascontiguousarray(rgb[:, :, ::-1])  # BGR for OpenCV
    h, w = image.shape[:2]
    if max(h, w) > max_side:
        scale = max_side / max(h, w)
        image = cv2.resize(image, (round(w * scale), round(h * scale)), interpolation=cv2.INTER_AREA)
    if redactor is not None:
        people = find_people(image) if find_people is not None else np.zeros((0, 4), np.float32)
        image = redactor.redact(image, people)
    ok, buf = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:  # pragma: no cover - OpenCV encodes any BGR uint8 image
        raise PhotoRejected("not_an_image", "the photo could not be stored")
    return buf.tobytes()
