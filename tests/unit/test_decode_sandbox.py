"""The decoding sandbox: decoder subprocesses and pool workers stopped by each limit, alone."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from contentmatch_shared.decode_limits import MB, Budget, DecodeLimits
from contentmatch_shared.decode_sandbox import (
    DecoderProcess,
    SandboxPool,
    _MemoryLedger,
    run_decoder,
)
from contentmatch_shared.errors import MediaError
from contentmatch_shared.settings import Settings
from tests.support import sandbox_jobs

SMALL = Budget(cpu_s=5, wall_s=20, memory_bytes=512 * MB)


def _python(code: str) -> list[str]:
    return [sys.executable, "-c", code]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is dead for our purpose
        return Path(f"/proc/{pid}/stat").read_text().split(")")[1].split()[0] != "Z"
    except OSError:
        return False


# -- decoder subprocesses --------------------------------------------------------------------


def test_a_decoder_that_spews_on_stderr_never_blocks_and_keeps_only_a_tail() -> None:
    code = (
        "import sys\n"
        "for i in range(200_000): sys.stderr.write(f'error {i} in frame\\n')\n"
        "sys.stdout.write('done')\n"
    )
    out, ended = run_decoder(_python(code), SMALL, "spewing")
    assert out == b"done"
    assert ended.returncode == 0
    assert ended.stderr_lines == 200_000
    assert len(ended.stderr_tail) <= 4096
    assert ended.last_line == "error 199999 in frame"


def test_a_decoder_past_its_deadline_is_killed() -> None:
    started = time.monotonic()
    with pytest.raises(MediaError) as exc:
        run_decoder(
            _python("import time; time.sleep(60)"),
            Budget(cpu_s=5, wall_s=1.0, memory_bytes=512 * MB),
            "sleeping",
        )
    assert exc.value.code == "decode_timeout"
    assert time.monotonic() - started < 10


def test_a_decoder_past_its_cpu_budget_is_stopped() -> None:
    with pytest.raises(MediaError) as exc:
        run_decoder(
            _python("while True: pass"), Budget(cpu_s=1, wall_s=30, memory_bytes=512 * MB), "spin"
        )
    assert exc.value.code == "decode_cpu_exceeded"


def test_a_decoder_past_its_memory_ceiling_fails() -> None:
    with pytest.raises(MediaError) as exc:
        run_decoder(
            _python("b = bytearray(600 * 2**20)"),
            Budget(cpu_s=5, wall_s=30, memory_bytes=300 * MB),
            "allocating",
        )
    assert exc.value.code == "decode_memory_exceeded"


def test_a_decoder_reads_no_stdin() -> None:
    with DecoderProcess(_python("import sys; print(len(sys.stdin.read()))"), SMALL) as decoder:
        out = decoder.stdout.read()
        assert decoder.wait().returncode == 0
    assert out.strip() == b"0"


# -- the memory ledger -------------------------------------------------------------------------


async def test_the_ledger_admits_in_order_while_memory_fits() -> None:
    ledger = _MemoryLedger(100)
    await ledger.acquire(60)
    order: list[str] = []

    async def take(name: str, n: int) -> None:
        await ledger.acquire(n)
        order.append(name)

    big = asyncio.create_task(take("big", 70))
    small = asyncio.create_task(take("small", 10))  # would fit, but waits its turn
    await asyncio.sleep(0.01)
    assert order == []
    ledger.release(60)
    await asyncio.gather(big, small)
    assert order == ["big", "small"]
    assert ledger.used == 80
    ledger.release(70)
    ledger.release(10)
    await asyncio.wait_for(ledger.acquire(500), 1)  # more than the total waits for all of it
    assert ledger.used == 100


# -- the worker pool ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
async def pool() -> AsyncIterator[SandboxPool]:
    limits = DecodeLimits.from_settings(Settings(fingerprint_decode_memory_mb=400))
    running = SandboxPool("test", 2, limits)
    running.start()
    try:
        yield running
    finally:
        running.close()


async def test_a_job_past_its_memory_ceiling_fails_alone(pool: SandboxPool) -> None:
    with pytest.raises(MediaError) as exc:
        await pool.run(sandbox_jobs.allocate, 300, 100)
    assert exc.value.code == "decode_memory_exceeded"
    assert await pool.run(sandbox_jobs.allocate, 50, 100) == 50 * MB


async def test_a_job_past_its_deadline_is_killed_and_its_worker_replaced(pool: SandboxPool) -> None:
    before = set(pool.workers)
    healthy = asyncio.create_task(pool.run(sandbox_jobs.echo, "fine"))
    started = time.monotonic()
    with pytest.raises(MediaError) as exc:
        await pool.run(sandbox_jobs.sleep, 60, 1.0)
    assert exc.value.code == "decode_timeout"
    assert time.monotonic() - started < 15
    assert await healthy == "fine"
    assert len(pool.workers) == 2 and set(pool.workers) != before
    assert await pool.run(sandbox_jobs.echo, 7) == 7


async def test_a_job_past_its_cpu_budget_fails(pool: SandboxPool) -> None:
    with pytest.raises(MediaError) as exc:
        await pool.run(sandbox_jobs.spin, 1.0)
    assert exc.value.code == "decode_cpu_exceeded"
    assert await pool.run(sandbox_jobs.echo, "next") == "next"


async def test_a_crashing_decoder_fails_its_job_only(pool: SandboxPool) -> None:
    with pytest.raises(MediaError) as exc:
        await pool.run(sandbox_jobs.crash)
    assert exc.value.code == "decoder_crashed"
    results = await asyncio.gather(*(pool.run(sandbox_jobs.echo, i) for i in range(4)))
    assert results == [0, 1, 2, 3]


async def test_closing_the_pool_kills_workers_and_their_decoders(tmp_path: Path) -> None:
    pool = SandboxPool("test", 1, DecodeLimits.from_settings(Settings()))
    pool.start()
    pid_file = tmp_path / "decoder.pid"
    job = asyncio.create_task(pool.run(sandbox_jobs.hang_in_a_decoder, str(pid_file)))
    for _ in range(200):
        if pid_file.exists() and pid_file.read_text():
            break
        await asyncio.sleep(0.05)
    decoder_pid = int(pid_file.read_text())
    workers = pool.workers
    assert _alive(decoder_pid)
    job.cancel()
    pool.close()
    await asyncio.sleep(0.5)
    assert not any(_alive(p) for p in [decoder_pid, *workers])


_SERVICE = """
import asyncio, sys
from contentmatch_shared.decode_limits import DecodeLimits
from contentmatch_shared.decode_sandbox import SandboxPool
from contentmatch_shared.settings import Settings
from tests.support import sandbox_jobs

async def main():
    pool = SandboxPool("killed", 2, DecodeLimits.from_settings(Settings()))
    pool.start()
    await asyncio.gather(*(pool.run(sandbox_jobs.pid) for _ in range(2)))
    print(*pool.workers, flush=True)
    await pool.run(sandbox_jobs.hang_in_a_decoder, sys.argv[1])

if __name__ == "__main__":
    asyncio.run(main())
"""


def test_workers_and_decoders_do_not_outlive_a_killed_service(tmp_path: Path) -> None:
    script, pid_file = tmp_path / "service.py", tmp_path / "decoder.pid"
    script.write_text(_SERVICE)
    repo = Path(__file__).resolve().parents[2]
    service = subprocess.Popen(
        [sys.executable, str(script), str(pid_file)],
        stdout=subprocess.PIPE,
        cwd=repo,
        env={**os.environ, "PYTHONPATH": str(repo)},
    )
    assert service.stdout is not None
    workers = [int(p) for p in service.stdout.readline().split()]
    deadline = time.monotonic() + 30
    while not (pid_file.exists() and pid_file.read_text()) and time.monotonic() < deadline:
        time.sleep(0.05)
    processes = [*workers, int(pid_file.read_text())]  # the workers and a hanging decoder
    assert len(processes) == 3 and all(_alive(p) for p in processes)
    service.kill()  # SIGKILL: no shutdown code runs
    service.wait()
    deadline = time.monotonic() + 10
    while any(_alive(p) for p in processes) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(_alive(p) for p in processes)
