from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from benchmarks.matching import iou_matrix
from detectors.postprocess import NmsSettings, decode_predictions

NC = 5


def raw(boxes_cxcywh: np.ndarray, cls: np.ndarray, conf: np.ndarray) -> np.ndarray:
    pred = np.zeros((4 + NC, len(cls)), np.float32)
    pred[:4] = boxes_cxcywh.T
    pred[4 + cls, np.arange(len(cls))] = conf
    return pred


def reference_nms(xyxy: np.ndarray, conf: np.ndarray, cls: np.ndarray, iou: float) -> list[int]:
    """Textbook greedy per-class NMS (torchvision semantics) to check the vectorized one against."""
    order = np.argsort(-conf, kind="stable")
    keep: list[int] = []
    for i in order:
        same = [k for k in keep if cls[k] == cls[i]]
        if not same or iou_matrix(xyxy[[i]], xyxy[same]).max() <= iou:
            keep.append(int(i))
    return keep


def test_overlapping_boxes_of_other_classes_survive() -> None:
    boxes = np.array([[100, 100, 50, 50], [102, 101, 50, 50], [101, 100, 50, 50]], np.float32)
    xyxy, conf, cls = decode_predictions(
        raw(boxes, np.array([0, 0, 2]), np.array([0.9, 0.8, 0.7])), NmsSettings()
    )
    assert cls.tolist() == [0, 2]
    np.testing.assert_allclose(xyxy[0], [75, 75, 125, 125])
    assert conf.tolist() == np.float32([0.9, 0.7]).tolist()


def test_threshold_class_filter_and_max_det() -> None:
    boxes = np.array([[10 + 60 * i, 50, 40, 40] for i in range(6)], np.float32)
    pred = raw(boxes, np.array([0, 1, 1, 2, 3, 4]), np.array([0.9, 0.2, 0.6, 0.5, 0.26, 0.95]))
    _, conf, cls = decode_predictions(pred, NmsSettings(conf=0.25))
    assert cls.tolist() == [4, 0, 1, 2, 3]  # 0.2 dropped, sorted by confidence
    _, _, cls = decode_predictions(pred, NmsSettings(classes=np.array([1, 2])))
    assert cls.tolist() == [1, 2]
    _, conf, _ = decode_predictions(pred, NmsSettings(max_det=2))
    assert conf.tolist() == np.float32([0.95, 0.9]).tolist()


def test_empty_output() -> None:
    xyxy, conf, cls = decode_predictions(np.zeros((4 + NC, 100), np.float32), NmsSettings())
    assert xyxy.shape == (0, 4) and conf.shape == (0,) and cls.shape == (0,)


@settings(max_examples=150, deadline=None)
@given(
    data=st.lists(
        st.tuples(
            st.floats(20, 300),
            st.floats(20, 300),
            st.floats(4, 80),
            st.floats(4, 80),
            st.integers(0, 2),
            st.floats(0.3, 1.0),
        ),
        min_size=1,
        max_size=40,
    ),
    iou=st.sampled_from([0.45, 0.5, 0.7]),
)
def test_matches_textbook_greedy_nms(data: list[tuple], iou: float) -> None:
    arr = np.array(data, np.float32)
    conf = arr[:, 5] + np.arange(len(arr), dtype=np.float32) * 1e-4  # distinct scores: order is defined
    cls = arr[:, 4].astype(int)
    xyxy, got_conf, got_cls = decode_predictions(raw(arr[:, :4], cls, conf), NmsSettings(conf=0.25, iou=iou))
    cx, cy, w, h = arr[:, :4].T
    ref_xyxy = np.stack((cx - w / 2, cy - h / 2, cx + w / 2, cy + h / 2), axis=1)
    keep = reference_nms(ref_xyxy, conf, cls, iou)
    assert got_cls.tolist() == cls[keep].tolist()
    np.testing.assert_allclose(got_conf, conf[keep])
    np.testing.assert_allclose(xyxy, ref_xyxy[keep], atol=1e-4)
