"""Privacy masks: the polygons are black before anything reads the frame."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from api.config import ConfigError, parse_config
from ingest.privacy import PrivacyMask


def test_mask_blacks_out_the_polygon_in_place_and_nothing_else() -> None:
    image = np.full((100, 200, 3), 200, np.uint8)
    mask = PrivacyMask([[(10, 10), (60, 10), (60, 50), (10, 50)], [(150, 60), (190, 60), (170, 95)]])
    out = mask.apply(image)
    assert out is image
    assert (image[12:48, 12:58] == 0).all() and (image[80, 168] == 0).all()
    assert (image[60:, :140] == 200).all() and (image[:, 70:140] == 200).all()
    hidden = (image == 0).all(axis=2).sum()
    assert 40 * 50 * 0.9 < hidden - (image[55:100, 145:195] == 0).all(axis=2).sum() < 52 * 42


def test_an_empty_mask_changes_nothing() -> None:
    image = np.arange(60, dtype=np.uint8).reshape(4, 5, 3).copy()
    before = image.copy()
    PrivacyMask([]).apply(image)
    assert np.array_equal(image, before) and not PrivacyMask([])


@settings(max_examples=40, deadline=None)
@given(
    st.integers(8, 64),
    st.integers(8, 64),
    st.lists(st.tuples(st.floats(-20, 90), st.floats(-20, 90)), min_size=3, max_size=6),
)
def test_any_polygon_is_safe_at_any_size(h: int, w: int, polygon: list[tuple[float, float]]) -> None:
    mask = PrivacyMask([polygon])
    image = np.full((h, w, 3), 255, np.uint8)
    mask.apply(image)
    assert np.array_equal((image == 0).all(axis=2), mask.mask(h, w))


def test_config_takes_masks_and_checks_places() -> None:
    base = {
        "cameras": {"gate": {"replay": {"path": "x.mp4"}, "privacy_masks": [[[0, 0], [10, 0], [10, 10]]]}}
    }
    assert parse_config(base).cameras["gate"].privacy_masks[0][2] == (10.0, 10.0)
    with pytest.raises(ConfigError, match="at least 3 points"):
        parse_config(
            {"cameras": {"gate": {"replay": {"path": "x.mp4"}, "privacy_masks": [[[0, 0], [1, 1]]]}}}
        )
    with pytest.raises(ConfigError, match="unknown khu phố 'kp9'"):
        parse_config({"cameras": {"gate": {"replay": {"path": "x.mp4"}, "khu_pho": "kp9"}}})
    with pytest.raises(ConfigError, match="unknown ward 'w9'"):
        parse_config({"khu_pho": {"kp1": {"name": "Khu phố 1", "ward": "w9"}}, **base})
    config = parse_config(
        {
            "wards": {"w1": {"name": "Phường Bến Nghé"}},
            "khu_pho": {"kp1": {"name": "Khu phố 1", "ward": "w1"}},
            "cameras": {"gate": {"replay": {"path": "x.mp4"}, "khu_pho": "kp1"}},
        }
    )
    assert config.khu_pho["kp1"].name == "Khu phố 1" and config.cameras["gate"].khu_pho == "kp1"
