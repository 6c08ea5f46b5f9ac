"""The sliding-window limiter of the public report routes, with explicit clocks."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from api.reports.limits import RateLimiter
from api.reports.text import new_tracking_code, normalise_code


def test_window_slides_and_tells_how_long_to_wait() -> None:
    limiter = RateLimiter(3, 60.0)
    assert [limiter.hit("a", now=t) for t in (0.0, 10.0, 20.0)] == [0.0, 0.0, 0.0]
    assert limiter.hit("a", now=30.0) == 30.0  # the use at 0 leaves the window at 60
    assert limiter.hit("b", now=30.0) == 0.0  # keys are separate
    assert limiter.hit("a", now=60.5) == 0.0  # refusals were not counted


def test_memory_stays_bounded_under_a_flood_of_keys() -> None:
    limiter = RateLimiter(1, 60.0, max_keys=100)
    for i in range(1000):
        limiter.hit(f"10.0.{i // 256}.{i % 256}", now=float(i) / 100)
    assert len(limiter._uses) <= 100


@given(st.data())
def test_typed_codes_are_read_back_in_any_spelling(data: st.DataObject) -> None:
    code = new_tracking_code()
    raw = code.replace("-", "")
    typed = data.draw(
        st.sampled_from([code, code.lower(), raw, " ".join(raw[i : i + 4] for i in range(0, 20, 4))])
    )
    assert normalise_code(typed) == code
    assert normalise_code(typed[:-1]) is None
