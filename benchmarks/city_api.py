"""The API process of the city benchmark: ``python -m benchmarks.city_api SPEC.json``.

The real app (``api.app.create_app``) on a :class:`PostgresEventStore`, with the security tables
(the benchmark's users, the review items) in the same database, local media, no cameras; served by uvicorn on
a free loopback port, written to the spec's ``ready`` file once it answers. A process of its own, so
the clients' threads do not share its interpreter lock.
"""

from __future__ import annotations

import json
import sys
import threading
import time
from pathlib import Path

import uvicorn

from api.app import create_app
from api.auth.db_postgres import PostgresSecurityDb
from api.auth.security import Security
from api.metrics import KhuphoMetrics
from benchmarks.city_feed import city_scope
from events.storage.bus import EventBus
from events.storage.objects import LocalObjectStore
from events.storage.postgres import PostgresEventStore


def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    store = PostgresEventStore(**spec["store"], pool_size=spec["pool_size"])
    # Accounts and review items in the same PostgreSQL, as an API replica of a cluster has them.
    security = Security.open(PostgresSecurityDb(store), city_scope(spec["cameras"]))
    app = create_app(
        store,
        LocalObjectStore(Path(spec["media"])),
        EventBus(),
        lambda: [],
        KhuphoMetrics(),
        security=security,
    )
    config = uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", access_log=False)
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        if not thread.is_alive():
            raise SystemExit("uvicorn did not start")
        time.sleep(0.05)
    port = server.servers[0].sockets[0].getsockname()[1]
    Path(spec["ready"]).write_text(f"http://127.0.0.1:{port}")
    thread.join()


if __name__ == "__main__":
    main(sys.argv[1])
