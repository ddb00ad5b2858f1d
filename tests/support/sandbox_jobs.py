"""Jobs for the decoding sandbox's tests: top-level so that a pool worker can unpickle them."""

from __future__ import annotations

import os
import signal
import sys
import time

from contentmatch_shared.decode_limits import MB, Budget
from contentmatch_shared.decode_sandbox import DecoderProcess, admit


def echo(value: object) -> object:
    return value


def pid() -> int:
    return os.getpid()


def allocate(mb: int, budget_mb: int) -> int:
    admit(Budget(cpu_s=10, wall_s=30, memory_bytes=budget_mb * MB))
    block = bytearray(mb * MB)
    return len(block)


def sleep(seconds: float, wall_s: float) -> None:
    admit(Budget(cpu_s=10, wall_s=wall_s, memory_bytes=16 * MB))
    time.sleep(seconds)


def spin(cpu_s: float) -> None:
    admit(Budget(cpu_s=cpu_s, wall_s=60, memory_bytes=16 * MB))
    while True:
        pass


def crash() -> None:
    os.kill(os.getpid(), signal.SIGSEGV)


def hang_in_a_decoder(pid_file: str) -> None:
    """Starts a subprocess that would sleep for minutes, records its pid, and waits for it."""
    decoder = DecoderProcess(
        [sys.executable, "-c", "import time; time.sleep(300)"],
        Budget(cpu_s=10, wall_s=300, memory_bytes=512 * MB),
    )
    with open(pid_file, "w") as fh:
        fh.write(str(decoder.proc.pid))
    decoder.wait()
