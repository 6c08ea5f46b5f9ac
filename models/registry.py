"""Models khupho knows by name: file name, where to get it, and its SHA-256."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ModelSpec:
    name: str
    filename: str
    sha256: str | None  # pinned digest; downloads without one are refused
    url: str | None  # where to download it from, if it is published
    how: str  # how to obtain it when there is no URL

    def describe(self) -> str:
        where = self.url or self.how
        return f"{self.name}: {self.filename} sha256={self.sha256 or 'unpinned'} ({where})"


EXPORT_HINT = "khupho models export --weights yolov8n-coco.pt (needs the 'ultralytics' extra)"

KNOWN_MODELS: dict[str, ModelSpec] = {
    spec.name: spec
    for spec in (
        ModelSpec(
            "yolov8n-coco",
            "yolov8n-coco.onnx",
            "407ebe4039047fcedc01adc8e26869ab26c3f35dc8aa1468a384d694f4178849",
            None,
            f"the project's shared models folder, or {EXPORT_HINT}",
        ),
        ModelSpec(
            "yolov8n-coco-int8-b1",
            "yolov8n-coco-int8-b1.onnx",
            "83de8f0d2cd521e00ae2b138c340a03dece35b060b3898509bdc69afff417312",
            None,
            f"the project's shared models folder, or {EXPORT_HINT} --batch 1 --precision int8",
        ),
        ModelSpec(
            "yolov8n-coco-pt",
            "yolov8n-coco.pt",
            "5bcc64f8b302f97212be758eaae494fcec76a31dde313e8febb8b05208c8cb9e",
            None,
            "the project's shared models folder",
        ),
        ModelSpec(
            "face-yunet",
            "face_detection_yunet.onnx",
            "ebafce4e3c118d6554634be5c27ab333b4c047a9a8c3faf1d7cf93101c22f0f0",
            "https://github.com/opencv/opencv_zoo/raw/main/models/face_detection_yunet/"
            "face_detection_yunet_2023mar.onnx",
            "OpenCV Zoo",
        ),
        ModelSpec(
            "yolov8n",
            "yolov8n.pt",
            None,
            "https://github.com/ultralytics/assets/releases/download/v8.3.0/yolov8n.pt",
            "Ultralytics' release assets (pass --sha256 to pin it)",
        ),
    )
}

DEFAULT_MODEL = "yolov8n-coco"


def spec_for(name_or_file: str) -> ModelSpec | None:
    """The known model with this name or file name, if any."""
    if name_or_file in KNOWN_MODELS:
        return KNOWN_MODELS[name_or_file]
    return next((s for s in KNOWN_MODELS.values() if s.filename == name_or_file), None)
