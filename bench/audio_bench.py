# ruff: noqa: E501  (wide benchmark tables)
"""Audio recognition benchmark: recall per degradation, false positives, speed, memory, latency.

    bash bench/install_audio_corpora.sh          # real music from Debian game data packages
    .venv/bin/python -m bench.audio_bench --quick

Corpus: the OGG soundtracks of freedroidrpg-data, frozen-bubble-data and supertux-data (falls back
to synthetic tests/fixtures/audio.py tracks when none are installed). A seeded split registers most
tracks and holds some out as never registered. Queries are seeded excerpts (10 s, and 5 s clean)
from random offsets, degraded, written to WAV and fingerprinted by the real signal code, then
searched. A query counts as recalled when the expected work is among the hits with a segment whose
reference start is within 1 s of the truth. Prints tables; asserts nothing.
"""

from __future__ import annotations

import argparse
import glob
import os
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from contentmatch_fingerprint.signals.audio import (  # noqa: E402
    ITEM_RATE,
    decode_items,
    encode_items,
    fingerprint_audio,
)
from contentmatch_match.index.audio import LM_FRAME_RATE, AudioIndex  # noqa: E402
from contentmatch_shared.fingerprints import AudioFingerprint  # noqa: E402
from tests.fixtures.audio import (  # noqa: E402
    degrade,
    make_track,
    mashup,
    write_wav,
)

SR = 22050
CORPUS_GLOBS = (
    "/usr/share/games/supertux2/music/**/*.ogg",
    "/usr/share/games/frozen-bubble/snd/*.ogg",
    "/usr/share/freedroidrpg/data/sound/music/*.ogg",
    "/usr/share/games/freedroidrpg/sound/music/*.ogg",
)
MIN_TRACK_S = 20.0
CONDITIONS = (
    ("clean", 10.0),
    ("clean", 5.0),
    ("mp3_64k", 10.0),
    ("pink_noise_10db", 10.0),
    ("volume_-8db", 10.0),
    ("telephone", 10.0),
    ("echo", 10.0),
    ("tempo_+3%", 10.0),
)


def _duration(path: str) -> float:
    out = subprocess.run(
        ["ffprobe", "-v", "error", "-show_entries", "format=duration", "-of", "csv=p=0", path],
        capture_output=True,
        text=True,
    )
    try:
        return float(out.stdout.strip())
    except ValueError:
        return 0.0


def _read_excerpt(path: str, start: float, seconds: float) -> np.ndarray:
    out = subprocess.run(
        ["ffmpeg", "-nostdin", "-v", "error", "-ss", f"{start:.3f}", "-t", f"{seconds:.3f}",
         "-i", path, "-map", "0:a:0", "-ac", "1", "-ar", str(SR), "-f", "f32le", "pipe:1"],
        capture_output=True, check=True,
    )  # fmt: skip
    return np.frombuffer(out.stdout, dtype="<f4").astype(np.float32)


def find_corpus() -> list[tuple[str, float]]:
    files = sorted({f for g in CORPUS_GLOBS for f in glob.glob(g, recursive=True)})
    out = []
    for f in files:
        d = _duration(f)
        if d >= MIN_TRACK_S:
            out.append((f, d))
    return out


def synthetic_corpus(tmp: str, n: int) -> list[tuple[str, float]]:
    out = []
    for seed in range(n):
        secs = 30.0 + (seed * 7) % 40
        p = os.path.join(tmp, f"synthetic-{seed}.wav")
        write_wav(p, make_track(seed, secs, SR), SR)
        out.append((p, secs))
    return out


def machine_line() -> str:
    cpu = "unknown CPU"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    ram = ""
    try:
        with open("/proc/meminfo") as f:
            kb = int(next(ln.split()[1] for ln in f if ln.startswith("MemTotal")))
        ram = f", {kb / 1024 / 1024:.0f} GiB RAM"
    except (OSError, StopIteration, ValueError):
        pass
    return f"{os.cpu_count()} CPUs ({cpu}){ram}, Python {sys.version.split()[0]}"


def load_line() -> str:
    la = os.getloadavg()
    return f"load average {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}"


def _cpu_s() -> float:
    """CPU seconds of this process and its finished children (ffmpeg, fpcalc)."""
    a = resource.getrusage(resource.RUSAGE_SELF)
    b = resource.getrusage(resource.RUSAGE_CHILDREN)
    return a.ru_utime + a.ru_stime + b.ru_utime + b.ru_stime


def pct(xs, q):
    return float(np.percentile(np.asarray(xs), q)) if len(xs) else float("nan")


def _table(title: str, header: list[str], rows: list[list[object]]) -> None:
    print(f"\n## {title}")
    widths = [
        max(len(str(h)), *(len(str(r[i])) for r in rows)) if rows else len(str(h))
        for i, h in enumerate(header)
    ]
    print("  ".join(str(h).ljust(w) for h, w in zip(header, widths, strict=True)))
    print("  ".join("-" * w for w in widths))
    for r in rows:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)))


def _fp_of(samples: np.ndarray, tmp: str) -> AudioFingerprint:
    p = os.path.join(tmp, "query.wav")
    write_wav(p, samples, SR)
    return fingerprint_audio(p)


REF_ITEMS: dict[str, np.ndarray] = {}  # work id → Chromaprint items, to recognise repeats


def _same_music(work_id: str, r0: float, r1: float, seconds: float) -> bool:
    """Game music loops: is the reference at ``r0`` a repeat of the reference at ``r1``?"""
    items = REF_ITEMS.get(work_id)
    if items is None:
        return False
    a, b = round(r0 * ITEM_RATE), round(r1 * ITEM_RATE)
    n = max(8, int(seconds * ITEM_RATE) - 18)
    best = 1.0
    for d in (-1, 0, 1):
        if min(a + d, b) < 0 or max(a + d, b) + n > len(items):
            continue
        best = min(
            best, float(np.bitwise_count(items[a + d : a + d + n] ^ items[b : b + n]).mean() / 32)
        )
    return best < 0.15


def _hit_ok(
    hits, work_id: str, ref_start: float, tol: float = 1.0, qlen: float = 10.0
) -> tuple[bool, bool]:
    """(work found, work found with a segment whose ref start is right, or a repeat of it)."""
    for h in hits:
        if h.work_id == work_id:
            for s in h.segments:
                # the ref time at the query's start, extrapolated along the segment
                r0 = s.ref_start - s.query_start * (
                    (s.ref_end - s.ref_start) / max(1e-6, s.query_end - s.query_start)
                )
                if abs(r0 - ref_start) <= tol or _same_music(work_id, r0, ref_start, qlen):
                    return True, True
            return True, False
    return False, False


def synthetic_fingerprint(
    rng: np.random.Generator, seconds: float, lm_per_s: float
) -> AudioFingerprint:
    """A random item stream with Chromaprint-like temporal correlation, plus random landmarks."""
    n = int(seconds * ITEM_RATE)
    flips = rng.integers(0, 32, size=(n, 3))
    masks = (np.uint32(1) << flips.astype(np.uint32)).astype(np.uint32)
    step = masks[:, 0] ^ np.where(rng.random(n) < 0.5, masks[:, 1], 0).astype(np.uint32)
    step = step ^ np.where(rng.random(n) < 0.25, masks[:, 2], 0).astype(np.uint32)
    start = rng.integers(0, 2**32, dtype=np.uint64).astype(np.uint32)
    items = np.bitwise_xor.accumulate(np.concatenate([[start], step[1:]]).astype(np.uint32))
    from contentmatch_fingerprint.signals.audio import encode_landmarks

    m = int(seconds * lm_per_s)
    frames = np.sort(rng.integers(0, int(seconds * LM_FRAME_RATE), m)).astype(np.uint32)
    hashes = rng.integers(0, 1 << 20, m).astype(np.uint32)
    return AudioFingerprint(
        duration_s=seconds,
        chromaprint=encode_items(items),
        item_rate=ITEM_RATE,
        extra={"landmarks": encode_landmarks(hashes, frames), "landmark_count": m},
    )


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--quick", action="store_true", help="fewer queries and a smaller scale run")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--queries", type=int, default=None, help="queries per condition")
    ap.add_argument("--scale-tracks", type=int, default=10_000)
    ap.add_argument(
        "--holdout", type=float, default=0.2, help="fraction of tracks never registered"
    )
    ap.add_argument("--no-scale", action="store_true")
    ap.add_argument(
        "--speed-core",
        type=int,
        default=0,
        help="CPU the speed comparison is pinned to (both tools); -1: unpinned",
    )
    args = ap.parse_args()
    if args.speed_core is not None and args.speed_core < 0:
        args.speed_core = None
    n_q = args.queries or (40 if args.quick else 150)
    n_fp = 2 * n_q if args.quick else 4 * n_q
    rng = np.random.default_rng(args.seed)
    tmp = tempfile.mkdtemp(prefix="cm-audio-bench-")

    print(f"# {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; {machine_line()}")
    print(f"# at start: {load_line()}; args: {' '.join(sys.argv[1:]) or '(full)'}")
    corpus = find_corpus()
    source = "Debian game music"
    if len(corpus) < 10:
        print(
            "# real corpus not found: run `bash bench/install_audio_corpora.sh`; using synthetic tracks"
        )
        corpus = synthetic_corpus(tmp, 40)
        source = "synthetic"
    order = rng.permutation(len(corpus))
    n_hold = max(3, round(args.holdout * len(corpus)))
    held = [corpus[i] for i in order[:n_hold]]
    reg = [corpus[i] for i in order[n_hold:]]
    reg_hours = sum(d for _, d in reg) / 3600
    print(f"# corpus: {source}: {len(corpus)} tracks, {sum(d for _, d in corpus) / 3600:.2f} h; "
          f"registered {len(reg)} ({reg_hours:.2f} h), never registered {len(held)}")  # fmt: skip

    # ---------------------------------------------------------------- registration + speed
    # Fair speed comparison: same files, one after the other, everything (this process, ffmpeg,
    # fpcalc) pinned to one core; wall clock and CPU time (self + children) both reported.
    index = AudioIndex()
    fp_times, fpcalc_times, audio_s = [], [], 0.0
    fp_cpu = fpcalc_cpu = 0.0
    lm_count = 0
    add_times = []
    fpcalc = shutil.which("fpcalc")
    affinity = os.sched_getaffinity(0) if hasattr(os, "sched_getaffinity") else None
    if affinity and args.speed_core is not None:
        os.sched_setaffinity(0, {args.speed_core if args.speed_core in affinity else min(affinity)})
    fingerprint_audio(reg[0][0])  # warm-up: imports, libchromaprint
    for i, (path, _dur) in enumerate(reg):
        c0, t0 = _cpu_s(), time.perf_counter()
        fp = fingerprint_audio(path)
        fp_times.append(time.perf_counter() - t0)
        fp_cpu += _cpu_s() - c0
        audio_s += fp.duration_s
        lm_count += int(fp.extra.get("landmark_count", 0))
        t0 = time.perf_counter()
        index.add(f"work-{i}", fp)
        add_times.append(time.perf_counter() - t0)
        REF_ITEMS[f"work-{i}"] = decode_items(fp.chromaprint)
        if fpcalc:
            c0, t0 = _cpu_s(), time.perf_counter()
            r = subprocess.run([fpcalc, "-raw", "-length", "0", path], capture_output=True)
            fpcalc_times.append(time.perf_counter() - t0)
            fpcalc_cpu += _cpu_s() - c0
            if r.returncode not in (0, 3):
                print(f"# fpcalc failed on {path}: {r.returncode}")
    if affinity:
        os.sched_setaffinity(0, affinity)
    work_of = {path: f"work-{i}" for i, (path, _) in enumerate(reg)}
    ours = audio_s / sum(fp_times)
    rows = [
        [
            "contentmatch (ffmpeg + chromaprint + landmarks)",
            f"{sum(fp_times):.2f}",
            f"{ours:.0f}x",
            f"{fp_cpu:.2f}",
            f"{audio_s / fp_cpu:.0f}x",
            f"{np.median(fp_times) * 1000:.0f}",
        ]
    ]
    if fpcalc_times:
        rows.append(
            [
                "fpcalc -raw -length 0",
                f"{sum(fpcalc_times):.2f}",
                f"{audio_s / sum(fpcalc_times):.0f}x",
                f"{fpcalc_cpu:.2f}",
                f"{audio_s / fpcalc_cpu:.0f}x",
                f"{np.median(fpcalc_times) * 1000:.0f}",
            ]
        )
        rows.append(
            [
                "ratio (ours / fpcalc)",
                f"{sum(fp_times) / sum(fpcalc_times):.2f}",
                "",
                f"{fp_cpu / fpcalc_cpu:.2f}",
                "",
                "",
            ]
        )
    where = "1 core" if affinity and args.speed_core is not None else "unpinned"
    _table(f"Fingerprinting speed ({len(reg)} files, {audio_s / 3600:.2f} h, sequential, {where}, decode included)",
           ["tool", "wall s", "x real time", "CPU s", "x real time (CPU)", "median ms/file"], rows)  # fmt: skip

    mem = index.memory_bytes()
    _table("Index (real size)", ["works", "hours", "memory MB", "KB per hour", "build s (adds = load after restart)"],
           [[len(index), f"{reg_hours:.2f}", f"{mem / 1e6:.1f}", f"{mem / 1024 / reg_hours:.0f}", f"{sum(add_times):.3f}"]])  # fmt: skip

    # ---------------------------------------------------------------- recall per degradation
    latencies: list[float] = []
    rows = []
    clean10_fps: list[tuple[AudioFingerprint, str]] = []
    misses: dict[str, list[str]] = {}
    for cond, qlen in CONDITIONS:
        found = found_seg = 0
        for k in range(n_q):
            path, dur = reg[int(rng.integers(len(reg)))]
            start = float(rng.uniform(0, max(0.0, dur - qlen - 0.5)))
            x = degrade(_read_excerpt(path, start, qlen), SR, cond, seed=k)
            fp = _fp_of(x, tmp)
            t0 = time.perf_counter()
            hits = index.search(fp)
            latencies.append(time.perf_counter() - t0)
            w, s = _hit_ok(hits, work_of[path], start, qlen=qlen)
            found += w
            found_seg += s
            if not s:
                misses.setdefault(f"{cond} {qlen:g}s", []).append(
                    f"{Path(path).name}@{start:.1f} -> {[(h.work_id, round(h.score, 2), h.signal) for h in hits[:2]]}"
                )
            if cond == "clean" and qlen == 10.0 and len(clean10_fps) < 50:
                clean10_fps.append((fp, work_of[path]))
        rows.append([cond, f"{qlen:g}", n_q, f"{found / n_q:.3f}", f"{found_seg / n_q:.3f}"])

    # mashups: two registered tracks, 10 s each
    ok_both = ok_one = 0
    for _k in range(n_q):
        (pa, da), (pb, db) = (reg[int(i)] for i in rng.choice(len(reg), 2, replace=False))
        sa = float(rng.uniform(0, da - 10.5))
        sb = float(rng.uniform(0, db - 10.5))
        x = mashup(_read_excerpt(pa, sa, 10.0), _read_excerpt(pb, sb, 10.0), SR, crossfade_s=0.5)
        fp = _fp_of(x, tmp)
        t0 = time.perf_counter()
        hits = index.search(fp)
        latencies.append(time.perf_counter() - t0)
        a_ok = _hit_ok(hits, work_of[pa], sa)[1]
        b_ok = any(
            h.work_id == work_of[pb]
            and any(
                abs((s.ref_start - s.query_start) - (sb - 9.5)) <= 1.0
                or _same_music(h.work_id, s.ref_start - s.query_start + 9.5, sb, 8.0)
                for s in h.segments
            )
            for h in hits
        )
        ok_both += a_ok and b_ok
        ok_one += a_ok or b_ok
    rows.append(["mashup (2 works, both)", "10+10", n_q, "", f"{ok_both / n_q:.3f}"])
    rows.append(["mashup (at least one)", "10+10", n_q, "", f"{ok_one / n_q:.3f}"])
    _table(
        "Recall (registered queries)",
        ["degradation", "clip s", "queries", "work", "work+segment"],
        rows,
    )

    # ---------------------------------------------------------------- false positives
    # a held-out track that shares long stretches with a registered one (same theme re-used in
    # another track) is not a never-registered query: found by a whole-track search, listed
    related = []
    for path, _dur in held:
        full = index.search(fingerprint_audio(path))
        if any(s.query_end - s.query_start >= 20.0 for h in full for s in h.segments):
            related.append(path)
    if related:
        print("\n# held-out tracks that contain registered music (excluded from the FP count): "
              + ", ".join(Path(p).name for p in related))  # fmt: skip
        held = [(p, d) for p, d in held if p not in related]
    fp_rows = []
    total = false = 0
    fp_examples = []
    fp_conds = (
        ("clean", 10.0),
        ("clean", 5.0),
        ("mp3_64k", 10.0),
        ("pink_noise_10db", 10.0),
        ("telephone", 10.0),
        ("echo", 10.0),
        ("tempo_+3%", 10.0),
    )
    per = max(1, n_fp // len(fp_conds))
    for cond, qlen in fp_conds:
        f = 0
        for k in range(per):
            path, dur = held[int(rng.integers(len(held)))]
            start = float(rng.uniform(0, max(0.0, dur - qlen - 0.5)))
            fp = _fp_of(degrade(_read_excerpt(path, start, qlen), SR, cond, seed=k), tmp)
            hits = index.search(fp)
            if hits:
                f += 1
                fp_examples.append(
                    f"{cond} {Path(path).name}@{start:.1f} -> {[(Path(reg[int(h.work_id.split('-')[1])][0]).name, round(h.score, 2), h.signal, h.evidence.get('chromaprint_ber'), h.evidence.get('landmark_matches')) for h in hits[:2]]}"
                )
        total += per
        false += f
        fp_rows.append([cond, f"{qlen:g}", per, f, f"{f / per:.3%}"])
    # synthetic never-registered tracks too (unrelated music-like audio)
    f = 0
    for k in range(per):
        x = make_track(10_000 + k, 12.0, SR)[: int(10 * SR)]
        hits = index.search(_fp_of(x, tmp))
        f += bool(hits)
    total += per
    false += f
    fp_rows.append(["synthetic tracks", "10", per, f, f"{f / per:.3%}"])
    fp_rows.append(["ALL", "", total, false, f"{false / total:.3%}"])
    _table(
        "False positives (never-registered queries)",
        ["degradation", "clip s", "queries", "with a hit", "FP rate"],
        fp_rows,
    )
    if fp_examples:
        print("false-positive examples:")
        for e in fp_examples[:15]:
            print("  ", e)
    if misses:
        print("missed examples:")
        for cond, ms in misses.items():
            for m in ms[:4]:
                print(f"   {cond}: {m}")

    lat = np.array(latencies) * 1000
    _table("Query latency (real size)", ["queries", "p50 ms", "p99 ms", "max ms"],
           [[len(lat), f"{pct(lat, 50):.1f}", f"{pct(lat, 99):.1f}", f"{lat.max():.1f}"]])  # fmt: skip

    # ---------------------------------------------------------------- scale run
    if args.no_scale:
        print(f"\n# at end: {load_line()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
        return
    n_scale = args.scale_tracks if not args.quick else min(args.scale_tracks, 10_000)
    lm_per_s = lm_count / max(1.0, audio_s)  # same landmark density as the real corpus
    srng = np.random.default_rng(args.seed + 99)
    t0 = time.perf_counter()
    gen_s = 0.0
    big = AudioIndex()
    total_s = 0.0
    for i in range(n_scale):
        g0 = time.perf_counter()
        secs = float(srng.uniform(120, 300))
        sfp = synthetic_fingerprint(srng, secs, lm_per_s)
        gen_s += time.perf_counter() - g0
        big.add(f"synthetic-{i}", sfp)
        total_s += secs
    build = time.perf_counter() - t0 - gen_s
    t1 = time.perf_counter()
    for i, (path, _dur) in enumerate(reg):
        big.add(f"work-{i}", fingerprint_audio(path))
    real_add = time.perf_counter() - t1
    lat = []
    ok = 0
    for fp, wid in clean10_fps:
        t2 = time.perf_counter()
        hits = big.search(fp)
        lat.append((time.perf_counter() - t2) * 1000)
        ok += bool(hits) and hits[0].work_id == wid
    hours = (total_s + audio_s) / 3600
    mem = big.memory_bytes()
    _table(f"Scale run: {n_scale} synthetic item streams (120-300 s, {lm_per_s:.0f} landmarks/s) + the real works",
           ["works", "hours", "memory MB", "KB per hour", "build s (load after restart)", "10 s query p50 ms", "p99 ms", "clean 10 s top-1"],
           [[len(big), f"{hours:.0f}", f"{mem / 1e6:.0f}", f"{mem / 1024 / hours:.0f}", f"{build:.1f} (+{real_add:.1f} real fp+add)",
             f"{pct(lat, 50):.1f}", f"{pct(lat, 99):.1f}", f"{ok}/{len(clean10_fps)}"]])  # fmt: skip
    shutil.rmtree(tmp, ignore_errors=True)
    print(f"\n# at end: {load_line()}; {datetime.now(UTC):%Y-%m-%d %H:%M} UTC")


if __name__ == "__main__":
    main()
