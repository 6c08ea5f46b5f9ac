"""Where models come from: known names, resolution order, checksum-verified downloads, export."""

from models.registry import DEFAULT_MODEL, KNOWN_MODELS, ModelSpec
from models.resolve import ChecksumMismatch, ModelNotFound, fetch, resolve_model, sha256_of

__all__ = [
    "DEFAULT_MODEL",
    "KNOWN_MODELS",
    "ChecksumMismatch",
    "ModelNotFound",
    "ModelSpec",
    "fetch",
    "resolve_model",
    "sha256_of",
]
