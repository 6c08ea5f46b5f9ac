"""The city simulation end to end, small: what it reports must be true, whatever the timings."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.city import run, table


@pytest.mark.slow
def test_city_simulation_places_rehomes_stores_and_serves(tmp_path: Path) -> None:
    opts = {
        "cameras": 200,
        "events": 50_000,
        "capacity": 8,
        "writers": 8,
        "write_seconds": 3.0,
        "api_seconds": 3.0,
        "clients": 4,
        "steady_rounds": 5,
        "max_moves_per_round": 2,
    }
    result = run(opts, tmp_path)

    c = result["controller"]
    # Every camera placed within capacity, never on two nodes, khu phố spread over nodes.
    assert c["unplaced"] == 0 and c["violations"] == [] and c["over_capacity"] == {}
    assert c["cold_start"]["settled"] and c["cold_start"]["max_khu_pho_per_node"] == 1
    # A tenth of the nodes lost: their cameras run again, each with an offline/online pair stored.
    rehome = c["rehome"]
    assert rehome["settled"] and rehome["nodes_lost"] == 3 and rehome["cameras_rehomed"] > 0
    assert rehome["lease_takes"] == rehome["cameras_rehomed"]
    assert rehome["offline_events"] == rehome["online_events"] == rehome["cameras_rehomed"]
    # Nodes joined: the controller moved cameras onto them until the loads are within one.
    assert c["rebalance"]["settled"] and c["rebalance"]["moves"] > 0

    # Every batch the simulated cameras wrote is stored: events, the open ones, traffic counts.
    for mode in ("saturation", "paced", "saturation_notify"):
        w = result["writes"][mode]
        check = w["check"]
        assert w["error_count"] == 0 and w["transitions"] > 0
        assert check["events_stored"] == check["events_emitted"] > 0
        assert check["open_stored"] == check["open_emitted"]
        assert check["traffic_stored"] == check["traffic_emitted"]

    feed = result["feed"]
    assert feed["load"]["loaded"] == 50_000 and feed["load"]["open_events"] > 0
    # The API's pages (admin, ward supervisor, khu phố operator) are the rows SQL reads.
    assert [ch["match"] for ch in feed["checks"]] == [True, True, True]
    assert feed["clients"]["failure_count"] == 0 and feed["clients"]["requests"] > 0
    # Every event filed under a review item (in PostgreSQL, with the accounts); the review console's
    # pages were requested by every role.
    assert feed["review"]["events_linked"] == 50_000 and 0 < feed["review"]["items"] < 50_000
    reviewed = {label.split(":")[0] for label in feed["clients"]["by_request"] if "review" in label}
    assert reviewed == {"admin", "supervisor", "operator"}
    assert not any(p["seq_scan_on_events"] for p in feed["explain"].values())
    assert result["recover"]["sample_cameras"] == 200
    assert "live feed fan-out" in table(result)
