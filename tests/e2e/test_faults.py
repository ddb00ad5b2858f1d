"""Faults while a platform posts uploads: ``kill -9`` of each service (restarted at once), and
``kill -9`` of Kafka and of the S3 server, each left down for 30 s before it is started again.

Every upload the API accepted (202) must reach its terminal status: each copy of a registered
work matched with exactly one report, listed once; each stranger no_match. A POST refused during
an outage (503, a timeout) is the client's to retry and is not counted. The figures (accepted,
refused, time to drain after each fault) are printed for the README's reliability section.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import httpx
import pytest

from contentmatch_shared.client import ContentMatchClient
from tests.e2e.conftest import Tenants
from tests.fixtures.images import make_image, to_bytes, transform_bytes
from tests.support.stack import SERVICES, Stack

WORK_SEEDS = (911, 912)
STRANGER_SEEDS = (977, 978)
OUTAGE_S = 30.0
POST_INTERVAL_S = 1.0
BURST = 4  # uploads posted right before each fault
DRAIN_TIMEOUT_S = 240.0
SETTLE_TIMEOUT_S = 90.0
TERMINAL = ("matched", "no_match", "failed")


@dataclass
class Accepted:
    upload_id: str
    expected_work: str | None  # None: a stranger
    at: float
    terminal_at: float | None = None
    view: dict = field(default_factory=dict)


class Platform(threading.Thread):
    """Posts uploads at a steady pace and watches the accepted ones until they are terminal."""

    def __init__(self, client: ContentMatchClient, payloads: list[tuple[bytes, str, str | None]]):
        super().__init__(daemon=True)
        self._client = client
        self._payloads = payloads
        self._posting = threading.Event()
        self._posting.set()
        self._done = threading.Event()
        self.accepted: list[Accepted] = []
        self.refused: Counter[str] = Counter()
        self._lock = threading.Lock()
        self._sent = 0
        self._watcher = threading.Thread(target=self._watch, daemon=True)

    def run(self) -> None:
        self._watcher.start()
        with httpx.Client(headers=self._client._http.headers, timeout=5) as http:
            while self._posting.is_set():
                self._post_one(http)
                time.sleep(POST_INTERVAL_S)

    def _post_one(self, http: httpx.Client) -> None:
        with self._lock:
            data, name, work = self._payloads[self._sent % len(self._payloads)]
            self._sent += 1
        try:
            response = http.post(
                f"{self._client.endpoints.ingest}/v1/uploads", files={"file": (name, data)}
            )
        except httpx.HTTPError as exc:
            outcome = type(exc).__name__
        else:
            if response.status_code == 202:
                with self._lock:
                    upload_id = response.json()["upload_id"]
                    self.accepted.append(Accepted(upload_id, work, time.monotonic()))
                return
            outcome = str(response.status_code)
        with self._lock:
            self.refused[outcome] += 1

    def post_burst(self, count: int) -> None:
        """Post ``count`` uploads now, so that a fault that follows at once has work in flight
        (at the steady pace, a fast machine finishes each upload before the next arrives)."""
        with httpx.Client(headers=self._client._http.headers, timeout=5) as http:
            for _ in range(count):
                self._post_one(http)

    def _watch(self) -> None:
        # Short timeouts and parallel reads: the watcher's own delay must not pass for the
        # pipeline's when the API or its S3 is down.
        http = httpx.Client(headers=self._client._http.headers, timeout=3)
        base = f"{self._client.endpoints.ingest}/v1/uploads/"

        def check(item: Accepted) -> None:
            try:
                response = http.get(base + item.upload_id)
            except httpx.HTTPError:
                return
            if response.status_code != 200:
                return
            view = response.json()
            settled = view["status"] in ("no_match", "failed") or (
                view["status"] == "matched" and len(view.get("reports", [])) >= len(view["matches"])
            )
            if settled:
                item.view, item.terminal_at = view, time.monotonic()

        with ThreadPoolExecutor(8) as pool:
            while not self._done.is_set():
                with self._lock:
                    pending = [a for a in self.accepted if a.terminal_at is None]
                list(pool.map(check, pending))
                time.sleep(0.5)
        http.close()

    def settle(self, timeout_s: float) -> None:
        """Wait (at most ``timeout_s``) until the uploads accepted so far are terminal."""
        with self._lock:
            waiting = list(self.accepted)
        deadline = time.monotonic() + timeout_s
        while any(a.terminal_at is None for a in waiting) and time.monotonic() < deadline:
            time.sleep(0.5)

    def stop_posting(self) -> None:
        self._posting.clear()
        self.join()

    def drain(self, timeout_s: float) -> list[Accepted]:
        """Wait until every accepted upload is terminal; the ones that are not."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(a.terminal_at is not None for a in self.accepted):
                break
            time.sleep(1.0)
        self._done.set()
        self._watcher.join()
        return [a for a in self.accepted if a.terminal_at is None]


@pytest.fixture(scope="module")
def payloads(tenants: Tenants) -> list[tuple[bytes, str, str | None]]:
    out: list[tuple[bytes, str, str | None]] = []
    for seed in WORK_SEEDS:
        image = make_image(seed, size=(320, 240))
        meta = {"title": f"Fault photo {seed}", "kind": "work", "policy": "block"}
        work_id = tenants.label.register_work(to_bytes(image, "PNG"), f"{seed}.png", meta)
        assert tenants.label.wait_work(work_id)["status"] == "indexed"
        for transform in ("jpeg_q20", "resize_third"):
            data, ext = transform_bytes(image, transform, seed=seed)
            out.append((data, f"copy-{seed}.{ext}", work_id))
    for seed in STRANGER_SEEDS:
        stranger = make_image(seed, size=(320, 240))
        out.append((to_bytes(stranger, "JPEG"), f"stranger-{seed}.jpg", None))
    return out


def test_every_accepted_upload_survives_kills_and_outages(
    stack: Stack, tenants: Tenants, payloads: list[tuple[bytes, str, str | None]]
) -> None:
    platform = Platform(tenants.tube, payloads)
    started = time.monotonic()
    faults: list[tuple[str, float, float]] = []  # (what, when it started, when it ended)

    def fault(what: str, action: object) -> None:
        begin = time.monotonic()
        action()  # type: ignore[operator]
        faults.append((what, begin - started, time.monotonic() - started))

    def outage(dependency: str) -> None:
        stack.infra.kill(dependency)
        time.sleep(OUTAGE_S)
        stack.infra.revive(dependency)
        stack.wait_ready(*SERVICES, timeout_s=180)

    platform.start()
    try:
        time.sleep(3)
        # Two at a time: every service dies once, and the run stays short.
        for pair in (SERVICES[:2], SERVICES[2:]):
            platform.post_burst(BURST)
            fault(f"kill -9 {' + '.join(pair)}", lambda p=pair: stack.restart(*p))
            time.sleep(2)
        platform.post_burst(BURST)
        fault("kill -9 kafka, down 30 s", lambda: outage("kafka"))
        # Recovered before the next fault: each one's recovery time is its own.
        platform.settle(SETTLE_TIMEOUT_S)
        platform.post_burst(BURST)
        fault("kill -9 s3, down 30 s", lambda: outage("s3"))
        time.sleep(3)
    finally:
        platform.stop_posting()
    stuck = platform.drain(DRAIN_TIMEOUT_S)

    accepted = platform.accepted
    print("\nfaults (s since start): " + ", ".join(f"{w} {b:.0f}-{e:.0f}" for w, b, e in faults))
    latency = sorted(a.terminal_at - a.at for a in accepted if a.terminal_at is not None)
    if latency:
        median, worst = latency[len(latency) // 2], latency[-1]
        print(f"accepted-to-terminal: median {median:.1f}s, max {worst:.1f}s")
    print(f"accepted {len(accepted)}, refused {dict(platform.refused)}, not terminal {len(stuck)}")
    in_flight = {}
    for what, begin, end in faults:
        # Accepted before the fault ended and not finished when it began: it went through it.
        hit = [
            a
            for a in accepted
            if a.at - started <= end
            and a.terminal_at is not None
            and a.terminal_at - started >= begin
        ]
        in_flight[what] = len(hit)
        if hit:
            drained = max(a.terminal_at for a in hit if a.terminal_at) - started - end
            print(
                f"{what}: {len(hit)} uploads through it, all terminal {max(drained, 0):.1f}s later"
            )
    assert not stuck, [(a.upload_id, a.at - started) for a in stuck]
    assert all(in_flight.values()), f"a fault with no upload going through it: {in_flight}"

    wrong = [
        (a.upload_id, a.expected_work, a.view["status"], [m["work_id"] for m in a.view["matches"]])
        for a in accepted
        if (a.view["status"], [m["work_id"] for m in a.view["matches"]])
        != (("matched", [a.expected_work]) if a.expected_work else ("no_match", []))
    ]
    assert not wrong, wrong
    matched = [a for a in accepted if a.expected_work]
    for item in matched:
        assert len(item.view["reports"]) == 1, item.view
        assert item.view["report_id"] == item.view["reports"][0]["report_id"]

    listed: Counter[str] = Counter()
    report_ids: Counter[str] = Counter()
    cursor = None
    while True:
        params = {"limit": 200, **({"cursor": cursor} if cursor else {})}
        page = tenants.tube.reports(**params)
        listed.update(r["upload_id"] for r in page["reports"])
        report_ids.update(r["report_id"] for r in page["reports"])
        cursor = page["next_cursor"]
        if not cursor:
            break
    assert [r for r, n in report_ids.items() if n > 1] == []
    assert [a.upload_id for a in matched if listed[a.upload_id] != 1] == []
    assert [a.upload_id for a in accepted if not a.expected_work and listed[a.upload_id]] == []
