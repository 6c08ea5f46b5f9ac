from __future__ import annotations

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from detectors.letterbox import PAD_VALUE, InputBuffers, Letterbox

sizes = st.integers(min_value=8, max_value=4000)


def test_known_shapes_match_ultralytics() -> None:
    # Input shapes Ultralytics' rect letterbox gives at imgsz 640 (checked against its predictor).
    assert Letterbox.fit(480, 640, (640, 640), 32, minimal=True).input_shape == (480, 640)
    lb = Letterbox.fit(720, 1280, (640, 640), 32, minimal=True)
    assert (lb.input_shape, lb.new_h, lb.top) == ((384, 640), 360, 12)
    assert Letterbox.fit(1080, 810, (640, 640), 32, minimal=True).input_shape == (640, 480)
    sq = Letterbox.fit(720, 1280, (640, 640), 32, minimal=False)
    assert (sq.input_shape, sq.top, sq.left) == ((640, 640), 140, 0)


@given(h=sizes, w=sizes, imgsz=st.sampled_from([320, 480, 640, 1280]))
def test_minimal_letterbox_fits_and_pads_to_stride(h: int, w: int, imgsz: int) -> None:
    lb = Letterbox.fit(h, w, (imgsz, imgsz), 32, minimal=True)
    assert lb.in_h % 32 == 0 and lb.in_w % 32 == 0
    assert max(lb.in_h, lb.in_w) <= imgsz
    assert lb.top + lb.new_h <= lb.in_h and lb.left + lb.new_w <= lb.in_w
    assert lb.in_h - lb.new_h < 32 and lb.in_w - lb.new_w < 32  # never more than one stride of padding


@given(h=sizes, w=sizes)
def test_boxes_round_trip_to_source(h: int, w: int) -> None:
    lb = Letterbox.fit(h, w, (640, 640), 32, minimal=True)
    gain = min(lb.in_h / h, lb.in_w / w)
    src = np.array([[0.1 * w, 0.2 * h, 0.6 * w, 0.9 * h]], np.float64)
    pad_x = round((lb.in_w - round(w * gain)) / 2 - 0.1)
    pad_y = round((lb.in_h - round(h * gain)) / 2 - 0.1)
    net = src * gain + np.array([pad_x, pad_y, pad_x, pad_y])
    back = lb.boxes_to_source(net.copy())
    np.testing.assert_allclose(back, src, atol=1e-6 * max(h, w))


def test_buffers_reuse_and_reset_borders() -> None:
    buffers = InputBuffers()
    big = np.full((480, 640, 3), 200, np.uint8)
    small = np.full((240, 640, 3), 10, np.uint8)
    lb_big = Letterbox.fit(480, 640, (640, 640), 32, minimal=False)
    lb_small = Letterbox.fit(240, 640, (640, 640), 32, minimal=False)
    first = buffers.fill([big], [lb_big], 1)
    second = buffers.fill([small], [lb_small], 1)
    assert first is second  # same shape, same buffer: no per-frame allocation
    # Grey where the previous, taller picture was, exact scaled values where the new one is.
    assert np.allclose(second[0, :, 0, 0], PAD_VALUE / 255)
    assert np.allclose(second[0, :, lb_small.top + 5, 5], 10 / 255)


def test_buffers_convert_bgr_to_rgb_planes() -> None:
    image = np.zeros((64, 64, 3), np.uint8)
    image[..., 0] = 255  # blue in BGR
    lb = Letterbox.fit(64, 64, (64, 64), 32, minimal=True)
    tensor = InputBuffers().fill([image], [lb], 1)
    assert tensor.shape == (1, 3, 64, 64) and tensor.dtype == np.float32
    assert tensor[0, 2].min() == 1.0 and tensor[0, 0].max() == 0.0  # blue ends in the last (B of RGB) plane
