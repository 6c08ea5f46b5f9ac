from __future__ import annotations

import string
from urllib.parse import quote, urlsplit

import pytest
from hypothesis import assume, given
from hypothesis import strategies as st

from ingest.urls import is_live_url, mask_text, mask_url


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("rtsp://admin:s3cret@10.0.0.7:554/stream1", "rtsp://admin:***@10.0.0.7:554/stream1"),
        ("rtsp://admin:@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://TOKEN123@cam/live", "rtsp://***@cam/live"),
        ("rtsp://cam.local/Streaming/Channels/101", "rtsp://cam.local/Streaming/Channels/101"),
        ("rtsp://u:p%40ss%2Fword@cam/x?channel=1", "rtsp://u:***@cam/x?channel=1"),
        # Raw '@' and '/' in a password as users paste them: still hidden whole.
        ("rtsp://admin:p@ss@cam/x", "rtsp://admin:***@cam/x"),
        ("rtsp://admin:pa/ss@cam/x", "rtsp://admin:***@cam/x"),
        (
            "rtsp://10.0.0.9/cam/realmonitor?channel=1&subtype=0&user=admin&password=hunter2",
            "rtsp://10.0.0.9/cam/realmonitor?channel=1&subtype=0&user=admin&password=***",
        ),
        ("https://relay/stream.m3u8?token=abc.def&x=1", "https://relay/stream.m3u8?token=***&x=1"),
        ("/var/lib/khupho/clips/a:b@c.mp4", "/var/lib/khupho/clips/a:b@c.mp4"),
        ("rtsp://[::1]:8554/cam", "rtsp://[::1]:8554/cam"),
        ("rtsp://user:pw@[::1]:8554/cam", "rtsp://user:***@[::1]:8554/cam"),
    ],
)
def test_mask_url_examples(url: str, masked: str) -> None:
    assert mask_url(url) == masked


def test_mask_text_scrubs_ffmpeg_messages() -> None:
    url = "rtsp://admin:p%40ss@10.0.0.7/x"
    msg = "[Errno 1094995529] Invalid data found when processing input: 'rtsp://admin:p@ss@10.0.0.7/x'"
    out = mask_text(msg + " " + url, url)
    assert "p@ss" not in out and "p%40ss" not in out
    assert out.count("rtsp://admin:***@10.0.0.7/x") == 2


def test_is_live_url() -> None:
    assert is_live_url("rtsp://cam/x") and is_live_url("RTSPS://cam/x") and is_live_url("srt://h:9000")
    assert not is_live_url("/tmp/a.mp4") and not is_live_url("file:///tmp/a.mp4")


users = st.text(string.ascii_letters + string.digits + "._-", min_size=1, max_size=12)
passwords = st.text(min_size=1, max_size=24).filter(lambda s: "\x00" not in s)
hosts = st.sampled_from(["10.0.0.7", "cam.local", "127.0.0.1:8554", "[fe80::1]:554", "nvr"])
paths = st.sampled_from(["", "/", "/stream1", "/Streaming/Channels/101", "/cam/realmonitor?channel=1"])


schemes = st.sampled_from(["rtsp", "rtsps", "rtmp", "http"])


@given(scheme=schemes, user=users, password=passwords, host=hosts, path=paths)
def test_encoded_password_never_survives(scheme: str, user: str, password: str, host: str, path: str) -> None:
    """Properly percent-encoded credentials: exact output, host/path intact, idempotent."""
    encoded = quote(password, safe="")
    url = f"{scheme}://{user}:{encoded}@{host}{path}"
    masked = mask_url(url)
    assert masked == f"{scheme}://{user}:***@{host}{path}"
    assert mask_url(masked) == masked
    parts = urlsplit(masked)
    assert parts.password == "***" and parts.username == user
    text = mask_text(f"error opening '{url}': refused ({url})", url)
    assert encoded not in text.replace(f"{scheme}://{user}:***@{host}{path}", "")


@given(user=users, password=passwords, host=hosts, path=paths)
def test_raw_password_never_survives(user: str, password: str, host: str, path: str) -> None:
    """Passwords pasted unencoded (with '@', ':', '/', spaces...) are still hidden."""
    assume("#" not in password and "?" not in password)  # those end a URL's authority for anyone
    url = f"rtsp://{user}:{password}@{host}{path}"
    masked = mask_url(url)
    assert masked == f"rtsp://{user}:***@{host}{path}"
    assert mask_url(masked) == masked


@given(host=hosts, path=paths)
def test_urls_without_credentials_are_unchanged(host: str, path: str) -> None:
    url = f"rtsp://{host}{path}"
    assert mask_url(url) == url


@given(st.text(max_size=80))
def test_never_raises(text: str) -> None:
    assert isinstance(mask_url(text), str)
    assert isinstance(mask_text(text, text), str)
