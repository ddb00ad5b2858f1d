# ruff: noqa: E501  (wide benchmark tables)
"""Pipeline benchmark: the whole stack (ingest, Kafka, S3, fingerprint, match, report) under load.

    make bench-pipeline                                   # this tree; previous run printed beside
    make bench-pipeline BENCH_ARGS="--baseline main~3"    # the same on a git worktree of a ref first
    .venv/bin/python -m bench.pipeline_bench --quick      # a few minutes

Brings up the real stack with `scripts/stack.sh up` on ports of its own (a fresh state directory
under .state/bench-pipeline), registers works from the Debian corpora (photos and clip art of
bench/install_image_corpora.sh, music of bench/install_audio_corpora.sh), then drives uploads over
HTTP as a platform would: photo JPEGs of about 300 KB (re-encoded copies of registered photos, which
match and get reports with thumbnails, and photos never registered) at a fixed offered rate, the
same at full speed from 8 client threads, and 30 s audio clips at a fixed rate.

An upload's verdict time is when its last event reaches Kafka: ``uploads.matched`` for no match,
the last of its ``reports.created`` otherwise (what a webhook would push); the bench reads both
topics as the operator. Afterwards every accepted upload is read back through
``GET /v1/uploads/{id}``, which must be final. A 429/503 answer is retried after its Retry-After.

Printed per phase: completed uploads/s, latency p50/p99 from POST to verdict, CPU seconds per
upload of every process (from /proc: each service with its workers, the Kafka and S3 JVMs) and
peak RSS per service against its Kubernetes memory limit (deploy/k8s/base). Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import glob
import io
import json
import os
import pickle
import random
import secrets
import shutil
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
from aiokafka import ConsumerRebalanceListener
from PIL import Image

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.audio_bench import duration_s  # noqa: E402
from contentmatch_shared.events import decode_event  # noqa: E402
from contentmatch_shared.kafka.connection import new_consumer  # noqa: E402
from contentmatch_shared.settings import Settings  # noqa: E402
from tests.support.k8s_limits import k8s_memory_limits as manifest_memory_limits  # noqa: E402

# Ports of this benchmark (helper index 5 of the session: 19550-19589).
S3_PORT, KAFKA_PORT, KAFKA_CONTROLLER_PORT = 19550, 19552, 19553
SERVICE_PORTS = {
    "ingest": 19561,
    "fingerprint": 19562,
    "match": 19563,
    "report": 19564,
    "delivery": 19565,  # webhooks (trees before it have no such service)
}
SERVICES = tuple(SERVICE_PORTS)
# process -> pid file under <state>/run
PROCESSES = {**{s: s for s in SERVICES}, "kafka": "kafka", "s3": "s3proxy"}

PHOTO_GLOBS = ("/usr/share/backgrounds/**/*.jpg", "/usr/share/backgrounds/**/*.png")
CLIPART_GLOB = "/usr/share/openclipart/png/**/*.png"
AUDIO_GLOBS = (
    "/usr/share/games/supertux2/music/**/*.ogg",
    "/usr/share/games/frozen-bubble/snd/*.ogg",
    "/usr/share/games/freedroidrpg/sound/music/*.ogg",
    "/usr/share/freedroidrpg/data/sound/music/*.ogg",
)
UPLOAD_JPEG_BYTES = 300_000
CLIP_S = 30.0
STATE_ROOT = ROOT / ".state" / "bench-pipeline"
RESULTS = STATE_ROOT / "results.json"  # this tree's runs, the last one printed beside the next
LAST_COMPARISON = STATE_ROOT / "last-comparison.json"  # every run of the last invocation
CLOCK_TICK = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


# -- the stack -------------------------------------------------------------------------------


def k8s_memory_limits(tree: Path = ROOT) -> dict[str, int]:
    """Memory limit in MiB of each service's container (and the broker's) in the base manifests."""
    return manifest_memory_limits((*SERVICES, "kafka"), tree)


@dataclass
class BenchStack:
    """``scripts/stack.sh`` of one source tree on this benchmark's ports and state directory."""

    tree: Path
    state: Path
    admin_key: str = field(default_factory=lambda: "cm_admin_" + secrets.token_urlsafe(16))
    env_overrides: dict[str, str] = field(default_factory=dict)

    @property
    def env(self) -> dict[str, str]:
        return {
            **os.environ,
            "CM_STATE_DIR": str(self.state),
            "CM_KAFKA_PORT": str(KAFKA_PORT),
            "CM_KAFKA_CONTROLLER_PORT": str(KAFKA_CONTROLLER_PORT),
            "CM_S3_PORT": str(S3_PORT),
            "CM_INGEST_PORT": str(SERVICE_PORTS["ingest"]),
            "CM_FINGERPRINT_PORT": str(SERVICE_PORTS["fingerprint"]),
            "CM_MATCH_PORT": str(SERVICE_PORTS["match"]),
            "CM_REPORT_PORT": str(SERVICE_PORTS["report"]),
            "CM_DELIVERY_PORT": str(SERVICE_PORTS["delivery"]),
            "CM_ADMIN_KEY": self.admin_key,
            # A benchmark client is no abuser: the per-key limits would cap what it measures.
            "CM_RATE_LIMIT_PER_S": json.dumps(
                {"operator": 0, "rightsholder": 0, "platform": 0, "enforcement": 0}
            ),
            **self.env_overrides,
        }

    def script(self, action: str) -> None:
        subprocess.run(
            ["bash", str(self.tree / "scripts" / "stack.sh"), action],
            env=self.env,
            cwd=self.tree,
            check=True,
            stdout=subprocess.DEVNULL,
        )

    def up(self) -> None:
        if (self.state / "run").exists():
            self.script("down")
        shutil.rmtree(self.state, ignore_errors=True)
        self.state.mkdir(parents=True)
        self.script("up")

    def down(self) -> None:
        self.script("down")

    def pid(self, process: str) -> int | None:
        path = self.state / "run" / f"{PROCESSES[process]}.pid"
        return int(path.read_text().strip()) if path.exists() else None

    def operator_settings(self) -> Settings:
        return Settings(
            kafka_bootstrap=f"127.0.0.1:{KAFKA_PORT}",
            kafka_security_protocol="SASL_PLAINTEXT",
            kafka_sasl_mechanism="SCRAM-SHA-512",
            kafka_username="admin",
            kafka_password_file=str(self.state / "kafka" / "users" / "admin.password"),
        )

    def url(self, service: str) -> str:
        return f"http://127.0.0.1:{SERVICE_PORTS[service]}"


# -- /proc -----------------------------------------------------------------------------------


def _children() -> dict[int, list[int]]:
    kids: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rpartition(")")[2].split()[1])
        kids.setdefault(ppid, []).append(int(entry))
    return kids


def process_tree(root: int, kids: dict[int, list[int]] | None = None) -> list[int]:
    kids = kids if kids is not None else _children()
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo.extend(kids.get(pid, []))
    return out


def tree_cpu_s(root: int, kids: dict[int, list[int]]) -> float:
    """CPU seconds of a process tree: live processes, plus children its members reaped."""
    total = 0
    for pid in process_tree(root, kids):
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
        except OSError:
            continue
        utime, stime, cutime, cstime = (int(v) for v in fields[11:15])
        total += utime + stime + cutime + cstime
    return total / CLOCK_TICK


def tree_rss_mib(root: int, kids: dict[int, list[int]]) -> float:
    total = 0
    for pid in process_tree(root, kids):
        try:
            total += int(Path(f"/proc/{pid}/statm").read_text().split()[1])
        except OSError:
            continue
    return total * PAGE / 2**20


class ProcessMonitor:
    """Samples the RSS of every process tree twice a second; CPU snapshots on demand."""

    def __init__(self, stack: BenchStack) -> None:
        self.roots = {p: pid for p in PROCESSES if (pid := stack.pid(p)) is not None}
        self.peak_rss: dict[str, float] = dict.fromkeys(self.roots, 0.0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.5):
            kids = _children()
            for name, root in self.roots.items():
                self.peak_rss[name] = max(self.peak_rss[name], tree_rss_mib(root, kids))

    def cpu(self) -> dict[str, float]:
        kids = _children()
        return {name: tree_cpu_s(root, kids) for name, root in self.roots.items()}


# -- verdicts from Kafka ---------------------------------------------------------------------


class VerdictWatcher:
    """Reads ``uploads.matched`` and ``reports.created`` from their end; records when each
    upload's verdict is complete (no match, or one report per matched work)."""

    def __init__(self, settings: Settings) -> None:
        self._settings = settings
        self.done_at: dict[str, float] = {}
        self.outcome: dict[str, str] = {}
        self._expected: dict[str, int] = {}
        self._reports: dict[str, set[str]] = {}
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=lambda: asyncio.run(self._run()), daemon=True)

    def start(self) -> None:
        self._thread.start()
        if not self._ready.wait(60):
            raise RuntimeError("the verdict watcher did not start")

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=10)

    async def _run(self) -> None:
        assigned = asyncio.Event()

        class Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                pass

            async def on_partitions_assigned(self, tps: Any) -> None:
                assigned.set()

        # A group of its own (the operator may join any): every partition, from the end.
        consumer = new_consumer(
            self._settings,
            group_id=f"bench-verdicts-{secrets.token_hex(4)}",
            enable_auto_commit=False,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            consumer.subscribe(["uploads.matched", "reports.created"], listener=Listener())
            while not assigned.is_set():
                await consumer.getmany(timeout_ms=100)
            for tp in consumer.assignment():  # resolved now, before the first upload
                await consumer.position(tp)
            self._ready.set()
            while not self._stop.is_set():
                batches = await consumer.getmany(timeout_ms=200)
                now = time.monotonic()
                for records in batches.values():
                    for record in records:
                        self._apply(record.topic, record.value, now)
        finally:
            await consumer.stop()

    def _apply(self, topic: str, value: bytes, now: float) -> None:
        payload = decode_event(value).payload
        with self._lock:
            uid = payload.upload_id
            if topic == "uploads.matched":
                self._expected[uid] = len(payload.matches)
                if uid not in self.outcome:
                    self.outcome[uid] = "matched" if payload.matches else "no_match"
            else:
                self._reports.setdefault(uid, set()).add(payload.report_id)
            complete = (
                uid in self._expected and len(self._reports.get(uid, ())) >= self._expected[uid]
            )
            if complete and uid not in self.done_at:
                self.done_at[uid] = now

    def wait(self, ids: list[str], timeout_s: float) -> bool:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            with self._lock:
                if all(i in self.done_at for i in ids):
                    return True
            time.sleep(0.1)
        return False


# -- media -----------------------------------------------------------------------------------


def _files(globs: tuple[str, ...] | str) -> list[str]:
    globs = (globs,) if isinstance(globs, str) else globs
    return sorted({f for g in globs for f in glob.glob(g, recursive=True)})


def upload_jpeg(path: str, variant: int, target: int = UPLOAD_JPEG_BYTES) -> bytes:
    """A photo re-encoded as a platform receives it: about ``target`` bytes of JPEG, the
    longer side 1,600-2,000 px (``variant`` varies size and quality, so no two are equal)."""
    with Image.open(path) as img:
        img = img.convert("RGB")
        side = 1600 + (variant * 97) % 400
        img.thumbnail((side, side), Image.Resampling.LANCZOS)
        lo, hi, best = 40, 95, b""
        while lo <= hi:  # the highest quality that stays within the target
            q = (lo + hi) // 2
            out = io.BytesIO()
            img.save(out, "JPEG", quality=q)
            if out.tell() <= target:
                best, lo = out.getvalue(), q + 1
            else:
                hi = q - 1
        return best or out.getvalue()


def audio_clip(path: str, start: float, seconds: float = CLIP_S) -> bytes:
    """``seconds`` of a track from ``start``, as a platform receives it (OGG Vorbis, ~128 kb/s)."""
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{start:.2f}", "-t", f"{seconds:.2f}",
         "-i", path, "-map", "0:a:0", "-c:a", "libvorbis", "-q:a", "4", "-f", "ogg", "pipe:1"],
        capture_output=True, check=True,
    )  # fmt: skip
    return out.stdout


@dataclass
class Workload:
    works: list[tuple[str, str]]  # (path, title)
    photo_uploads: list[bytes]
    audio_works: list[tuple[str, str]]
    audio_uploads: list[bytes]


def build_workload(args: argparse.Namespace) -> Workload:
    rng = random.Random(args.seed)
    photos = _files(PHOTO_GLOBS)
    rng.shuffle(photos)
    n_strangers = max(1, len(photos) // 3)
    strangers, registered_photos = photos[:n_strangers], photos[n_strangers:]
    clipart = _files(CLIPART_GLOB)
    rng.shuffle(clipart)
    clipart = clipart[: max(0, args.works - len(registered_photos))]
    works = [(p, f"photo {Path(p).stem}") for p in registered_photos]
    works += [(p, f"clipart {Path(p).stem}") for p in clipart]
    # Half copies of registered photos (matched: reports with thumbnails), half never registered.
    n = args.photo_variants
    sources = [
        (registered_photos if i % 2 == 0 else strangers)[(i // 2) % len(strangers)]
        for i in range(n)
    ]
    with ThreadPoolExecutor(4) as pool:
        photo_uploads = list(pool.map(upload_jpeg, sources, range(n)))

    tracks = [(t, d) for t in _files(AUDIO_GLOBS) if (d := duration_s(t)) >= CLIP_S + 5]
    rng.shuffle(tracks)
    audio_works, audio_uploads = [], []
    if args.audio_count and tracks:
        n_reg = max(1, (len(tracks) * 2) // 3)
        audio_works = [(t, f"track {Path(t).stem}") for t, _ in tracks[:n_reg]]
        unregistered = tracks[n_reg:] or tracks[:1]
        jobs = []
        for i in range(min(args.audio_count, 40)):
            t, d = (tracks[:n_reg] if i % 2 == 0 else unregistered)[(i // 2) % len(unregistered)]
            jobs.append((t, rng.uniform(0, d - CLIP_S - 1)))
        with ThreadPoolExecutor(4) as pool:
            audio_uploads = list(pool.map(lambda j: audio_clip(*j), jobs))
    return Workload(works, photo_uploads, audio_works, audio_uploads)


# -- the driver ------------------------------------------------------------------------------


@dataclass
class Posted:
    upload_id: str
    started: float  # monotonic time of the accepted POST
    refusals: int


class Driver:
    def __init__(self, stack: BenchStack) -> None:
        self.stack = stack
        self.admin = httpx.Client(
            headers={"Authorization": f"Bearer {stack.admin_key}"}, timeout=60
        )
        self.platform_key = self._key("platform", "bench-tube")
        self.rightsholder_key = self._key("rightsholder", "bench-label")
        self._local = threading.local()

    def _key(self, role: str, tenant: str) -> str:
        r = self.admin.post(
            f"{self.stack.url('ingest')}/v1/keys", json={"role": role, "tenant": tenant}
        )
        r.raise_for_status()
        return str(r.json()["key"])

    def _client(self, key: str) -> httpx.Client:
        clients = getattr(self._local, "clients", None)
        if clients is None:
            clients = self._local.clients = {}
        if key not in clients:
            clients[key] = httpx.Client(
                headers={"Authorization": f"Bearer {key}"},
                timeout=120,
                # uvicorn closes idle connections after 5 s: never reuse one that old.
                limits=httpx.Limits(keepalive_expiry=2.0),
            )
        return clients[key]

    def register(self, path: str, title: str) -> str:
        data = Path(path).read_bytes()
        meta = {"title": title, "kind": "work", "policy": "monetize"}
        r = self._client(self.rightsholder_key).post(
            f"{self.stack.url('ingest')}/v1/works",
            files={"file": (Path(path).name, data)},
            data={"metadata": json.dumps(meta)},
        )
        r.raise_for_status()
        return str(r.json()["work_id"])

    def work_done(self, work_id: str) -> bool:
        r = self._client(self.rightsholder_key).get(
            f"{self.stack.url('ingest')}/v1/works/{work_id}"
        )
        return r.status_code == 200 and r.json()["status"] != "pending"

    def post_upload(self, data: bytes, name: str) -> Posted:
        """POST until accepted; a 429/503 waits its Retry-After (as a platform's client should).
        A request on a connection the server had just closed is sent again (no Idempotency-Key:
        its records would cost S3 requests the figures should not include; clients drop idle
        connections before the server's keep-alive timeout, so this is rare)."""
        refusals = 0
        while True:
            started = time.monotonic()
            try:
                r = self._client(self.platform_key).post(
                    f"{self.stack.url('ingest')}/v1/uploads",
                    files={"file": (name, data)},
                )
            except httpx.TransportError:
                time.sleep(0.2)
                continue
            if r.status_code in (201, 202):
                return Posted(r.json()["upload_id"], started, refusals)
            if r.status_code in (429, 503) and "retry-after" in r.headers:
                refusals += 1
                time.sleep(min(float(r.headers["retry-after"]), 10.0))
                continue
            raise RuntimeError(f"upload refused: {r.status_code} {r.text[:200]}")

    def upload_status(self, upload_id: str) -> str:
        r = self._client(self.platform_key).get(
            f"{self.stack.url('ingest')}/v1/uploads/{upload_id}"
        )
        r.raise_for_status()
        body = r.json()
        if body["status"] == "matched" and len(body["reports"]) < len(body["matches"]):
            return "matched (reports missing)"
        return str(body["status"])


@dataclass
class PhaseResult:
    name: str
    offered: str
    uploads: int
    completed_per_s: float
    accepted_per_s: float
    p50_s: float
    p99_s: float
    max_s: float
    refusals: int
    outcomes: dict[str, int]
    cpu_s_per_upload: dict[str, float]
    load_average: float


def _pct(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    xs = sorted(values)
    k = (len(xs) - 1) * q / 100
    lo = int(k)
    hi = min(lo + 1, len(xs) - 1)
    return xs[lo] + (xs[hi] - xs[lo]) * (k - lo)


def run_phase(
    name: str,
    driver: Driver,
    watcher: VerdictWatcher,
    monitor: ProcessMonitor,
    payloads: list[bytes],
    suffix: str,
    *,
    count: int,
    rate: float | None,
    threads: int = 8,
) -> PhaseResult:
    """``count`` uploads, offered at ``rate`` per second (open loop), or as fast as ``threads``
    clients get them accepted when ``rate`` is None."""
    cpu0 = monitor.cpu()
    t0 = time.monotonic()
    posted: list[Posted] = []
    lock = threading.Lock()

    def one(i: int) -> None:
        if rate is not None:
            delay = t0 + i / rate - time.monotonic()
            if delay > 0:
                time.sleep(delay)
        p = driver.post_upload(payloads[i % len(payloads)], f"{name}-{i}{suffix}")
        with lock:
            posted.append(p)

    workers = threads if rate is None else max(threads, int(rate * 4))
    with ThreadPoolExecutor(workers) as pool:
        list(pool.map(one, range(count)))
    accepted_at = time.monotonic()
    ids = [p.upload_id for p in posted]
    if not watcher.wait(ids, timeout_s=max(300.0, count * 2.0)):
        missing = [i for i in ids if i not in watcher.done_at]
        print(f"   {len(missing)} uploads without a verdict after the timeout")
    ended = max((watcher.done_at.get(i, time.monotonic()) for i in ids), default=t0)
    cpu1 = monitor.cpu()
    load = os.getloadavg()[0]
    latencies = [
        watcher.done_at[p.upload_id] - p.started for p in posted if p.upload_id in watcher.done_at
    ]
    outcomes: dict[str, int] = {}
    with ThreadPoolExecutor(8) as pool:
        for status in pool.map(driver.upload_status, ids):
            outcomes[status] = outcomes.get(status, 0) + 1
    return PhaseResult(
        name=name,
        offered=f"{rate:g}/s" if rate is not None else f"full speed, {threads} clients",
        uploads=len(posted),
        completed_per_s=len(latencies) / max(ended - t0, 1e-9),
        accepted_per_s=len(posted) / max(accepted_at - t0, 1e-9),
        p50_s=_pct(latencies, 50),
        p99_s=_pct(latencies, 99),
        max_s=max(latencies, default=float("nan")),
        refusals=sum(p.refusals for p in posted),
        outcomes=outcomes,
        cpu_s_per_upload={k: (cpu1[k] - cpu0[k]) / max(len(posted), 1) for k in cpu0},
        load_average=load,
    )


def register_works(driver: Driver, works: list[tuple[str, str]], what: str) -> None:
    started = time.monotonic()
    with ThreadPoolExecutor(8) as pool:
        ids = list(pool.map(lambda w: driver.register(*w), works))
    pending = list(ids)
    while pending:
        if time.monotonic() - started > 900:
            raise RuntimeError(f"{len(pending)} works still pending after 15 minutes")
        time.sleep(1.0)
        with ThreadPoolExecutor(8) as pool:
            done = list(pool.map(driver.work_done, pending))
        pending = [w for w, d in zip(pending, done, strict=True) if not d]
    print(f"   {len(ids)} {what} registered and indexed in {time.monotonic() - started:.0f} s")


def run_tree(label: str, tree: Path, args: argparse.Namespace, load: Workload) -> dict[str, Any]:
    print(f"\n== {label}: {tree} ({git_describe(tree)})", flush=True)
    stack = BenchStack(tree=tree, state=STATE_ROOT / "state")
    started = time.monotonic()
    stack.up()
    print(f"   stack up in {time.monotonic() - started:.0f} s", flush=True)
    monitor = ProcessMonitor(stack)
    monitor.start()
    watcher = VerdictWatcher(stack.operator_settings())
    try:
        driver = Driver(stack)
        register_works(driver, load.works, "image works")
        if load.audio_uploads:
            register_works(driver, load.audio_works, "audio works")
        watcher.start()
        # Warm-up: first requests open connections, load code paths and caches.
        run_phase("warm-up", driver, watcher, monitor, load.photo_uploads, ".jpg", count=10, rate=5)
        phases = []
        for phase in (
            ("image at a fixed rate", load.photo_uploads, ".jpg", args.count, args.rate),
            ("image at full speed", load.photo_uploads, ".jpg", args.count, None),
            (
                "audio 30 s clips at a fixed rate",
                load.audio_uploads,
                ".ogg",
                args.audio_count,
                args.audio_rate,
            ),
        ):
            name, payloads, suffix, count, rate = phase
            if not payloads or not count:
                continue
            result = run_phase(
                name, driver, watcher, monitor, payloads, suffix, count=count, rate=rate
            )
            print_phase(result)
            phases.append(asdict(result))
    finally:
        watcher.stop()
        monitor.stop()
        stack.down()
    limits = k8s_memory_limits(tree)
    return {
        "label": label,
        "tree": str(tree),
        "commit": git_describe(tree),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "machine": machine_line(),
        "phases": phases,
        "peak_rss_mib": monitor.peak_rss,
        "memory_limits_mib": limits,
    }


# -- output ----------------------------------------------------------------------------------


def git_describe(tree: Path) -> str:
    out = subprocess.run(
        ["git", "-C", str(tree), "log", "-1", "--format=%h %s"], capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "-C", str(tree), "status", "--porcelain", "--untracked-files=no"],
        capture_output=True,
        text=True,
    ).stdout.strip()
    return out.stdout.strip()[:70] + (" (+ uncommitted changes)" if dirty else "")


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}), Python {sys.version.split()[0]}"


STAGES = ("ingest", "fingerprint", "match", "report", "delivery", "kafka", "s3")


def print_phase(r: PhaseResult) -> None:
    cpu = " ".join(
        f"{k} {r.cpu_s_per_upload[k] * 1000:.0f}" for k in STAGES if k in r.cpu_s_per_upload
    )
    total = sum(r.cpu_s_per_upload.values()) * 1000
    print(
        f"   {r.name} ({r.offered}): {r.uploads} uploads, {r.completed_per_s:.1f} completed/s "
        f"(accepted {r.accepted_per_s:.1f}/s, {r.refusals} refusals), latency p50 {r.p50_s:.2f} s "
        f"p99 {r.p99_s:.2f} s max {r.max_s:.2f} s; outcomes {r.outcomes}; "
        f"CPU ms/upload: {cpu}, total {total:.0f}; load average {r.load_average:.1f}",
        flush=True,
    )


def print_comparison(runs: list[dict[str, Any]]) -> None:
    labels = [f"{r['label']} ({r['commit'][:7]}, {r['date'][:16]})" for r in runs]
    print("\n## Pipeline benchmark")
    print(f"Machine: {runs[-1]['machine']}")
    names = [p["name"] for p in runs[-1]["phases"]]
    for name in names:
        rows = [next((p for p in r["phases"] if p["name"] == name), None) for r in runs]
        print(f"\n### {name}\n")
        print("| figure | " + " | ".join(labels) + (" | ratio |" if len(runs) > 1 else " |"))
        print("|---" * (len(runs) + 1 + (len(runs) > 1)) + "|")

        def line(title: str, get: Any, fmt: str, higher_better: bool, rows: list = rows) -> None:
            vals = [get(p) if p else None for p in rows]
            cells = [format(v, fmt) if v is not None else "—" for v in vals]
            ratio = ""
            if len(runs) > 1 and vals[0] and vals[-1]:
                x = vals[-1] / vals[0] if higher_better else vals[0] / vals[-1]
                ratio = f" | {x:.2f}x"
            elif len(runs) > 1:
                ratio = " | —"
            print(f"| {title} | " + " | ".join(cells) + ratio + " |")

        line("completed uploads/s", lambda p: p["completed_per_s"], ".1f", True)
        line("latency p50 (s)", lambda p: p["p50_s"], ".2f", False)
        line("latency p99 (s)", lambda p: p["p99_s"], ".2f", False)
        line("refused with Retry-After", lambda p: p["refusals"], "d", False)
        for stage in STAGES:
            line(
                f"CPU ms/upload: {stage}",
                lambda p, s=stage: p["cpu_s_per_upload"].get(s, 0) * 1000,
                ".0f",
                False,
            )
        line(
            "CPU ms/upload: all", lambda p: sum(p["cpu_s_per_upload"].values()) * 1000, ".0f", False
        )
        line("load average (1 min)", lambda p: p["load_average"], ".1f", False)
        for r, p in zip(runs, rows, strict=True):
            if p:
                print(f"   {r['label']}: {p['uploads']} uploads, outcomes {p['outcomes']}")
    print("\n### Peak RSS per service (process tree, MiB) vs Kubernetes limit\n")
    print("| process | " + " | ".join(labels) + " | limit |")
    print("|---" * (len(runs) + 2) + "|")
    limits = runs[-1]["memory_limits_mib"]
    for proc in STAGES:
        cells = [f"{r['peak_rss_mib'].get(proc, 0):.0f}" for r in runs]
        limit = limits.get(proc)
        print(f"| {proc} | " + " | ".join(cells) + f" | {limit if limit else '—'} |")


def baseline_tree(ref: str) -> Path:
    """A git worktree of ``ref`` with its own virtualenv (its services import its sources)."""
    path = STATE_ROOT / "baseline-tree"
    if path.exists():
        subprocess.run(["git", "-C", str(path), "checkout", "-q", "--detach", ref], check=True)
    else:
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "-q", "--detach", str(path), ref],
            check=True,
        )
    subprocess.run(["uv", "sync", "--frozen", "--python", "python3.11", "-q"], cwd=path, check=True)
    return path


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--baseline", metavar="REF", help="run the same on a git worktree of REF first")
    ap.add_argument(
        "--works", type=int, default=300, help="image works registered (photos + clip art)"
    )
    ap.add_argument("--count", type=int, default=300, help="photo uploads per image phase")
    ap.add_argument("--rate", type=float, default=10.0, help="offered photo uploads/s")
    ap.add_argument("--audio-count", type=int, default=100, help="audio clips (0: no audio phase)")
    ap.add_argument("--audio-rate", type=float, default=5.0, help="offered audio clips/s")
    ap.add_argument("--photo-variants", type=int, default=60, help="distinct upload JPEGs")
    ap.add_argument("--seed", type=int, default=18)
    ap.add_argument("--quick", action="store_true", help="150 works, 100 photos, 40 clips")
    ap.add_argument("--print-last", action="store_true", help="print the last comparison again")
    args = ap.parse_args(argv)
    if args.print_last:
        print_comparison(json.loads(LAST_COMPARISON.read_text()))
        return
    if args.quick:
        args.works, args.count, args.audio_count, args.photo_variants = 150, 100, 40, 30
    la = os.getloadavg()
    print(f"Pipeline benchmark, {datetime.now(UTC):%Y-%m-%d %H:%M} UTC, {machine_line()}")
    print(f"load average before: {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}", flush=True)
    started = time.monotonic()
    STATE_ROOT.mkdir(parents=True, exist_ok=True)
    # Preparing the media takes minutes on a busy machine: kept for runs with the same sizes.
    cached = STATE_ROOT / (
        f"workload-{args.seed}-{args.works}-{args.photo_variants}-{args.audio_count}.pickle"
    )
    if cached.exists():
        load = pickle.loads(cached.read_bytes())
    else:
        load = build_workload(args)
        cached.write_bytes(pickle.dumps(load))
    sizes = sorted(len(p) for p in load.photo_uploads)
    print(
        f"workload: {len(load.works)} image works, {len(load.photo_uploads)} upload JPEGs "
        f"({sizes[0] // 1000}-{sizes[-1] // 1000} KB), {len(load.audio_works)} audio works, "
        f"{len(load.audio_uploads)} clips of {CLIP_S:.0f} s; prepared in "
        f"{time.monotonic() - started:.0f} s",
        flush=True,
    )
    previous = json.loads(RESULTS.read_text()) if RESULTS.exists() else []
    runs = []
    if args.baseline:
        runs.append(run_tree(f"baseline {args.baseline}", baseline_tree(args.baseline), args, load))
    runs.append(run_tree("this tree", ROOT, args, load))
    if not args.baseline and previous:
        runs.insert(0, {**previous[-1], "label": "previous run"})
    RESULTS.write_text(json.dumps([*previous, runs[-1]][-20:], indent=1))
    LAST_COMPARISON.write_text(json.dumps(runs, indent=1))
    print_comparison(runs)
    la = os.getloadavg()
    print(f"\nload average after: {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}")


if __name__ == "__main__":
    main()
