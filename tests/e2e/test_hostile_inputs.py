"""Hostile uploads through the HTTP API: each fails alone, with its reason, and the next normal
upload is still matched. The peak memory of every service (its process tree: workers, ffmpeg)
over the suite is printed at the end."""

from __future__ import annotations

import contextlib
import io
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image

from tests.e2e.conftest import Tenants
from tests.fixtures import hostile_media as hostile
from tests.fixtures.images import make_image, to_bytes
from tests.support.k8s_limits import k8s_memory_limits
from tests.support.stack import SERVICES, Stack

MIB = 1024 * 1024
K8S_LIMIT_MIB = k8s_memory_limits(SERVICES)
META = {"title": "Hostile-suite reference", "kind": "work", "policy": "monetize"}


@dataclass(frozen=True)
class Case:
    name: str
    build: Callable[[], bytes]
    filename: str
    code: str
    message: str = ""  # a fragment the reason must contain


def _png(seed: int) -> bytes:
    return to_bytes(make_image(seed), "PNG")


def _jpeg(seed: int) -> bytes:
    return to_bytes(make_image(seed), "JPEG")


CASES = [
    Case("png_10gp", lambda: hostile.png_declaring(100_000, 100_000), "z.png", "image_too_large"),
    Case("webp_268mp", lambda: hostile.webp_declaring(16383, 16383), "z.webp", "image_too_large"),
    Case("tiff_3.6gp", lambda: hostile.tiff_declaring(60_000, 60_000), "z.tif", "image_too_large"),
    # within the pixel limit, but libtiff's buffer plus the image exceed one decode's memory
    Case("tiff_64mp_rgba", hostile.tiff_over_memory_budget, "m.tif", "image_too_large", "MB"),
    Case(
        "tiff_64mp_lying_strip",
        lambda: hostile.tiff_declaring(8000, 8000),
        "l.tif",
        "undecodable_image",
        "truncated",
    ),
    Case("png_truncated", lambda: hostile.truncated(_png(7)), "t.png", "undecodable_image"),
    Case("jpeg_truncated", lambda: hostile.truncated(_jpeg(8), 0.3), "t.jpg", "undecodable_image"),
    Case("jpeg_html_polyglot", hostile.jpeg_html_polyglot, "p.jpg", "undecodable_image"),
    Case("png_zip_polyglot", hostile.png_zip_polyglot, "p.png", "undecodable_image"),
    Case("gif_js_polyglot", hostile.gif_script_polyglot, "p.gif", "undecodable_image"),
    Case(
        "flac_384khz_8ch_silence",
        lambda: hostile.flac_silence(384_000, 8, 30),
        "s.flac",
        "audio_sample_rate_unsupported",
    ),
    Case(
        "flac_192khz_8ch_declaring_2h",
        lambda: hostile.flac_declaring_hours(192_000, 8, 2),
        "h.flac",
        "audio_sample_budget_exceeded",
    ),
    Case(
        "wav_4mhz",
        lambda: hostile.wav_declaring(4_000_000, 1),
        "r.wav",
        "audio_sample_rate_unsupported",
    ),
    Case(
        "wav_64_channels",
        lambda: hostile.wav_declaring(44_100, 64),
        "c.wav",
        "audio_channels_unsupported",
    ),
    Case(
        "mp3_spewing_errors",
        hostile.mp3_spewing_errors,
        "e.mp3",
        "undecodable_audio",
        "decoder errors",
    ),
]


# -- peak memory of each service's process tree -------------------------------------------------


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        tree.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return tree


def _rss_kib(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class PeakRss:
    """Samples the summed RSS of each service's process tree (what its container is charged for)
    every 50 ms; the peak per service over the suite."""

    def __init__(self, stack: Stack) -> None:
        self.roots = {s: stack.procs[s].pid for s in SERVICES if s in stack.procs}
        self.peak_kib = dict.fromkeys(self.roots, 0)
        self.processes = dict.fromkeys(self.roots, 0)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            tree = _children()
            for service, root in self.roots.items():
                pids, todo = [], [root]
                while todo:
                    pid = todo.pop()
                    pids.append(pid)
                    todo.extend(tree.get(pid, []))
                total = sum(_rss_kib(p) for p in pids)
                if total > self.peak_kib[service]:
                    self.peak_kib[service] = total
                    self.processes[service] = len(pids)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


@pytest.fixture(scope="module")
def peaks(stack: Stack, request: pytest.FixtureRequest) -> Iterator[dict[str, list[str]]]:
    timings: dict[str, list[str]] = {}
    with PeakRss(stack) as rss:
        yield timings
    lines = ["", "hostile inputs: per case (seconds from POST to final status, outcome)"]
    lines += [f"  {name:36} {' '.join(row)}" for name, row in timings.items()]
    lines.append("hostile inputs: peak RSS of each service's process tree over the suite")
    for service, kib in rss.peak_kib.items():
        lines.append(
            f"  {service:12} {kib / 1024:7.0f} MiB  ({rss.processes[service]} processes; "
            f"k8s limit {K8S_LIMIT_MIB[service]} MiB)"
        )
    (stack.infra.state_dir / "hostile_inputs.txt").write_text("\n".join(lines) + "\n")
    capture = request.config.pluginmanager.getplugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n".join(lines))


@pytest.fixture(scope="module")
def reference(tenants: Tenants) -> tuple[bytes, str]:
    """A registered work and a copy of it: the normal upload that must still match."""
    image = make_image(1501)
    work_id = tenants.label.register_work(to_bytes(image, "PNG"), "ref.png", META)
    assert tenants.label.wait_work(work_id)["status"] == "indexed"
    return to_bytes(image, "JPEG", quality=85), work_id


def _upload_and_wait(tenants: Tenants, data: bytes, filename: str) -> tuple[dict, float]:
    started = time.monotonic()
    upload = tenants.tube.wait_upload(tenants.tube.submit_upload(data, filename), timeout_s=180)
    return upload, time.monotonic() - started


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_a_hostile_upload_fails_alone_with_its_reason(
    case: Case,
    tenants: Tenants,
    reference: tuple[bytes, str],
    peaks: dict[str, list[str]],
) -> None:
    copy, work_id = reference
    hostile_id = tenants.tube.submit_upload(case.build(), case.filename)
    started = time.monotonic()
    normal_id = tenants.tube.submit_upload(copy, "normal.jpg")  # right behind it
    upload = tenants.tube.wait_upload(hostile_id, timeout_s=180)
    elapsed = time.monotonic() - started
    peaks[case.name] = [f"{elapsed:5.1f}s", str(upload["status"]), str(upload.get("error"))]
    assert upload["status"] == "failed", upload
    assert upload["error"]["code"] == case.code, upload["error"]
    assert case.message in upload["error"]["message"], upload["error"]
    normal = tenants.tube.wait_upload(normal_id, timeout_s=180)
    assert normal["status"] == "matched", normal
    assert normal["matches"][0]["work_id"] == work_id


def test_a_79_99_megapixel_png_is_decoded_within_budget_and_thumbnailed_or_refused(
    tenants: Tenants, peaks: dict[str, list[str]]
) -> None:
    """The 311 KB bomb itself (all transparent) and a registered original of the same size: the
    fingerprint service decodes both under its memory ceiling; report refuses to thumbnail the
    original within its own (smaller) one and says so in the report."""
    upload, elapsed = _upload_and_wait(tenants, hostile.png_bomb_79mp(), "bomb.png")
    peaks["png_79.99mp_transparent"] = [f"{elapsed:5.1f}s", upload["status"], str(upload["error"])]
    assert upload["status"] in ("no_match", "failed"), upload
    if upload["status"] == "failed":
        assert upload["error"]["code"] == "image_too_small", upload["error"]  # flat: no signal

    small = make_image(1502, (447, 447))
    big = small.resize((447 * 20, 447 * 20), Image.Resampling.NEAREST).convert("RGBA")
    out = io.BytesIO()
    big.save(out, "PNG", compress_level=1)
    del big
    work_id = tenants.label.register_work(out.getvalue(), "huge-original.png", META)
    started = time.monotonic()
    work = tenants.label.wait_work(work_id, timeout_s=180)
    registered = time.monotonic() - started
    assert work["status"] == "indexed", work
    upload, elapsed = _upload_and_wait(tenants, to_bytes(small, "JPEG", quality=90), "s.jpg")
    peaks["png_79.99mp_original_registered"] = [f"{registered:5.1f}s", work["status"]]
    assert upload["status"] == "matched", upload
    assert upload["matches"][0]["work_id"] == work_id
    report = tenants.label_enforcement.report(upload["report_id"])
    missing = report["evidence"].get("pictures_missing", [])
    peaks["png_79.99mp_original_matched"] = [f"{elapsed:5.1f}s", "report", str(missing)]
    assert any("work_thumbnail" in m and "MB" in m for m in missing), report["evidence"]
