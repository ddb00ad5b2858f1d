"""The decoding sandbox: untrusted media is decoded in worker processes (and decoder
subprocesses such as ffmpeg) under a wall-clock deadline, a memory ceiling and a CPU budget.

How a job runs (:meth:`SandboxPool.run`):

1. An idle worker gets the job under the *probe* limits (enough to sniff and read headers).
2. Once the job knows what the media declares, it calls :func:`admit` with its ``Budget``
   (``decode_limits``). The pool waits until that much memory is free among all the service's
   decodes, then the worker lowers its address-space limit (``RLIMIT_AS``) to its current size plus
   the budget and its CPU limit (``RLIMIT_CPU``) to its CPU time so far plus the budget, and the
   pool's deadline for the job becomes the budget's wall-clock time.
3. A job that exceeds a limit fails alone with a ``MediaError`` naming the limit
   (``decode_timeout``, ``decode_cpu_exceeded``, ``decode_memory_exceeded``, ``decoder_crashed``);
   a worker that died or was killed is replaced, and the other jobs never notice.

Nothing outlives the service: each worker leads its own process group (killed as a whole at a
deadline and on shutdown) and kills that group itself when the service's end of its lifeline
pipe closes (the service died, however); every decoder subprocess it starts asks the kernel to
kill it when the worker dies (``PR_SET_PDEATHSIG``, :class:`DecoderProcess`).
A decoder subprocess never blocks on a pipe: stdout is the caller's to read, stderr is drained by a
thread that keeps only its last few KB for the error message.
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import ctypes
import logging
import math
import multiprocessing
import os
import pickle
import resource
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from multiprocessing.connection import Connection
from typing import Any

from contentmatch_shared import metrics
from contentmatch_shared.decode_limits import LIMIT_OF_CODE, Budget, DecodeLimits
from contentmatch_shared.errors import MediaError

log = logging.getLogger(__name__)

_PR_SET_PDEATHSIG = 1
_STDERR_TAIL_BYTES = 4096
_RECYCLE_GROWTH_BYTES = 384 * 1024 * 1024  # a worker whose RSS grew this much is replaced
_OUT_OF_MEMORY = ("Cannot allocate memory", "out of memory", "MemoryError", "std::bad_alloc")
_CRASH_SIGNALS = {signal.SIGSEGV, signal.SIGBUS, signal.SIGILL, signal.SIGFPE, signal.SIGABRT}


# ---------------------------------------------------------------------------------------------
# Process-level limits (used in workers and in decoder subprocesses)


def _die_with_parent() -> None:
    """The kernel sends SIGKILL to this process when the thread that forked it exits."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)


def _status_kb(field: str) -> int:
    """A ``VmXxx`` figure of this process from /proc/self/status, in KiB (0 if unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def _cpu_s() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def _set_soft(which: int, value: int) -> None:
    _, hard = resource.getrlimit(which)
    if hard != resource.RLIM_INFINITY:
        value = min(value, hard)
    resource.setrlimit(which, (value, hard))


def _unlimit() -> None:
    for which in (resource.RLIMIT_AS, resource.RLIMIT_CPU):
        _, hard = resource.getrlimit(which)
        resource.setrlimit(which, (hard, hard))


def _apply(budget: Budget) -> None:
    """Limit this process to ``budget`` from now on (soft limits: the next job lifts them)."""
    _set_soft(resource.RLIMIT_AS, _status_kb("VmSize") * 1024 + budget.memory_bytes)
    _set_soft(resource.RLIMIT_CPU, math.ceil(_cpu_s() + budget.cpu_s))


# ---------------------------------------------------------------------------------------------
# Inside a worker


_conn: Connection | None = None  # set in a sandbox worker: admit() talks to the pool through it


def in_sandbox() -> bool:
    return _conn is not None


def admit(budget: Budget) -> None:
    """Called by a job once it knows its budget: waits for the pool to admit it, then applies it.

    Outside a sandbox worker (tests, benchmarks) it does nothing."""
    if _conn is None:
        return
    _conn.send(("admit", budget))
    _conn.recv()  # the pool answers once the memory is free
    _apply(budget)


def _picklable(exc: BaseException) -> BaseException:
    """The exception itself when it survives the trip to the pool, else a RuntimeError."""
    try:
        pickle.loads(pickle.dumps(exc))
    except Exception:
        return RuntimeError(f"{type(exc).__name__}: {exc}")
    return exc


def _watch_lifeline(lifeline: Connection) -> None:
    """Kill this worker and its decoders once the service is gone: only the service holds the
    other end of the lifeline, so it reads end-of-file when the service exits, however it
    exits. (The worker's parent is the forkserver, which lives as long as any worker does, so
    PR_SET_PDEATHSIG alone would not fire.)"""
    with contextlib.suppress(EOFError, OSError):
        lifeline.recv()
    os.killpg(0, signal.SIGKILL)


def _worker_main(
    conn: Connection,
    lifeline: Connection,
    initializer: Callable[[], None] | None,
    probe: Budget,
) -> None:
    global _conn
    os.setpgid(0, 0)  # the pool kills the worker and its decoder subprocesses as one group
    _die_with_parent()
    threading.Thread(target=_watch_lifeline, args=(lifeline,), daemon=True).start()
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the service decides when its workers stop
    # One thread per native library: parallelism comes from the pool, and idle thread pools
    # would inflate the address space the memory ceiling is measured against.
    for var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    _conn = conn
    if initializer is not None:
        initializer()
    baseline_rss = _status_kb("VmRSS") * 1024
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        fn, args = job
        _apply(probe)
        try:
            reply: tuple[str, Any] = ("ok", fn(*args))
        except MemoryError:
            reply = ("error", MediaError("decode_memory_exceeded", "decoding ran out of memory"))
        except BaseException as exc:
            reply = ("error", _picklable(exc))
        finally:
            _unlimit()
        retiring = _status_kb("VmRSS") * 1024 - baseline_rss > _RECYCLE_GROWTH_BYTES
        try:
            conn.send((*reply, retiring))
        except (EOFError, OSError):
            return
        if retiring:
            return


# ---------------------------------------------------------------------------------------------
# The pool (in the service process)


class _MemoryLedger:
    """Admits decodes first come, first served while their memory fits in the service's total."""

    def __init__(self, total: int) -> None:
        self.total = total
        self.used = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def acquire(self, n: int) -> None:
        n = min(n, self.total)
        if not self._waiters and self.used + n <= self.total:
            self.used += n
            return
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((n, fut))
        try:
            await fut
        except asyncio.CancelledError:
            if fut.done() and not fut.cancelled():
                self.release(n)
            else:
                self._waiters.remove((n, fut))
            raise

    def release(self, n: int) -> None:
        self.used -= min(n, self.total)
        while self._waiters and self.used + self._waiters[0][0] <= self.total:
            m, fut = self._waiters.popleft()
            if not fut.done():
                self.used += m
                fut.set_result(None)


class _Worker:
    def __init__(
        self,
        ctx: Any,
        initializer: Callable[[], None] | None,
        probe: Budget,
        name: str,
    ) -> None:
        parent_end, child_end = ctx.Pipe()
        life_r, self._lifeline = ctx.Pipe(duplex=False)
        self.proc = ctx.Process(
            target=_worker_main,
            args=(child_end, life_r, initializer, probe),
            name=name,
            daemon=True,
        )
        self.proc.start()
        child_end.close()
        life_r.close()
        self.conn: Connection = parent_end
        self.killed_at_deadline = False

    def receive(self, timeout_s: float) -> tuple[Any, ...] | None:
        """The worker's next message, None if it died; TimeoutError after ``timeout_s``.

        Blocking: the pool calls it in its own threads (an event loop's reader callbacks may make
        the socket non-blocking, and a message can arrive in several reads)."""
        try:
            ready = self.conn.poll(max(timeout_s, 0.0))
            message = tuple(self.conn.recv()) if ready else None
        except (EOFError, OSError):
            return None
        if message is None:
            raise TimeoutError
        return message

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.proc.pid, signal.SIGKILL)
        with contextlib.suppress(ProcessLookupError):
            os.kill(self.proc.pid, signal.SIGKILL)

    def reap(self) -> int | None:
        self.proc.join(timeout=5)
        self.conn.close()
        self._lifeline.close()
        return self.proc.exitcode


@dataclass(frozen=True)
class _Death:
    code: str
    message: str
    transient: bool


def classify_exit(exitcode: int | None, budget: Budget, *, at_deadline: bool) -> _Death:
    """Why a worker died in the middle of a job, as a job failure."""
    if at_deadline:
        return _Death(
            "decode_timeout", f"decoding took longer than its {budget.wall_s:.0f} s deadline", False
        )
    if exitcode is not None and exitcode < 0:
        sig = -exitcode
        if sig == signal.SIGXCPU:
            return _Death(
                "decode_cpu_exceeded",
                f"decoding used more than its {budget.cpu_s:.0f} s CPU budget",
                False,
            )
        if sig in _CRASH_SIGNALS:
            return _Death(
                "decoder_crashed",
                f"the decoder crashed ({signal.Signals(sig).name}) under a "
                f"{budget.memory_bytes / 2**20:.0f} MB memory ceiling",
                False,
            )
    # Killed from outside (an operator, the OOM killer) or exited: not the media's fault.
    return _Death("worker_lost", f"decode worker exited with status {exitcode}", True)


class SandboxPool:
    """Worker processes that run decode jobs under limits; see the module docstring.

    ``run`` is a coroutine: the event loop only waits on the workers' pipes."""

    def __init__(
        self,
        service: str,
        workers: int,
        limits: DecodeLimits,
        initializer: Callable[[], None] | None = None,
    ) -> None:
        self.service = service
        self.limits = limits
        self._initializer = initializer
        self._size = workers
        # forkserver: workers must not inherit the event loop's threads and sockets.
        self._ctx = multiprocessing.get_context("forkserver")
        self._idle: asyncio.Queue[_Worker] = asyncio.Queue()
        self._all: set[_Worker] = set()
        self._memory = _MemoryLedger(limits.total_memory_bytes)
        # one thread per worker waits for its messages (never the default executor: decodes
        # last minutes, and the service's S3 calls need those threads)
        self._waiting = ThreadPoolExecutor(workers, thread_name_prefix=f"{service}-decode-wait")
        self._spawned = 0
        self._closed = False

    def start(self) -> None:
        for _ in range(self._size):
            self._spawn()

    def _spawn(self) -> None:
        self._spawned += 1
        worker = _Worker(
            self._ctx,
            self._initializer,
            self.limits.probe(),
            f"{self.service}-decode-{self._spawned}",
        )
        self._all.add(worker)
        self._idle.put_nowait(worker)

    def _retire(self, worker: _Worker) -> None:
        worker.kill()
        worker.reap()
        self._all.discard(worker)
        if not self._closed:
            self._spawn()

    @property
    def workers(self) -> list[int]:
        """Process ids of the live workers (for tests and operators)."""
        return [w.proc.pid for w in self._all]

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` in a worker; its result, or the exception it raised, or a
        ``MediaError`` naming the limit that stopped it."""
        worker = await self._idle.get()
        budget = self.limits.probe()
        granted = 0
        clean = False
        loop = asyncio.get_running_loop()
        try:
            worker.conn.send((fn, args))
            deadline = loop.time() + budget.wall_s
            while True:
                try:
                    message = await loop.run_in_executor(
                        self._waiting, worker.receive, deadline - loop.time()
                    )
                except TimeoutError:
                    worker.killed_at_deadline = True
                    worker.kill()
                    message = None
                if message is None:
                    death = classify_exit(
                        await asyncio.to_thread(worker.reap),
                        budget,
                        at_deadline=worker.killed_at_deadline,
                    )
                    if death.transient:
                        raise RuntimeError(death.message)
                    raise MediaError(death.code, death.message)
                kind = message[0]
                if kind == "admit":
                    budget = message[1]
                    await self._memory.acquire(budget.memory_bytes)
                    granted = budget.memory_bytes
                    worker.conn.send(("admitted",))
                    deadline = loop.time() + budget.wall_s
                    continue
                _, value, retiring = message
                clean = not retiring
                if kind == "ok":
                    return value
                raise value
        except MediaError as exc:
            limit = LIMIT_OF_CODE.get(exc.code)
            if limit is not None:
                metrics.DECODE_LIMIT_EXCEEDED.labels(self.service, limit).inc()
            raise
        finally:
            if granted:
                self._memory.release(granted)
            if clean:
                self._idle.put_nowait(worker)
            else:  # dead, retiring, or abandoned mid-job (cancelled): never reused
                self._retire(worker)

    def close(self) -> None:
        """Stop every worker (and its decoder subprocesses); used on service shutdown."""
        self._closed = True
        for worker in list(self._all):
            with contextlib.suppress(OSError):
                worker.conn.send(None)
        deadline = time.monotonic() + 2.0
        for worker in list(self._all):
            worker.proc.join(timeout=max(0.0, deadline - time.monotonic()))
            worker.kill()
            worker.reap()
        self._all.clear()
        self._waiting.shutdown(wait=False, cancel_futures=True)


# ---------------------------------------------------------------------------------------------
# Decoder subprocesses


def _limit_child(budget: Budget) -> None:
    """Runs in the child between fork and exec: limits, and death with its parent."""
    _die_with_parent()
    resource.setrlimit(resource.RLIMIT_AS, (budget.memory_bytes, budget.memory_bytes))
    cpu = max(1, math.ceil(budget.cpu_s))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 2))  # SIGXCPU, then SIGKILL
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))


@dataclass(frozen=True)
class DecoderExit:
    returncode: int
    cpu_s: float
    timed_out: bool
    stderr_tail: str
    stderr_lines: int  # how many lines the decoder wrote on stderr (errors, at -loglevel error)

    def failure(self, budget: Budget, what: str) -> MediaError | None:
        """A limit that stopped the decoder, as a MediaError; None when no limit was hit."""
        if self.timed_out:
            return MediaError(
                "decode_timeout", f"{what} took longer than its {budget.wall_s:.0f} s deadline"
            )
        if self.returncode in (-signal.SIGXCPU, -signal.SIGKILL) or (
            self.returncode != 0 and self.cpu_s >= math.ceil(budget.cpu_s) - 0.05
        ):
            return MediaError(
                "decode_cpu_exceeded", f"{what} used more than its {budget.cpu_s:.0f} s CPU budget"
            )
        if any(sign in self.stderr_tail for sign in _OUT_OF_MEMORY):
            return MediaError(
                "decode_memory_exceeded",
                f"{what} needed more than {budget.memory_bytes / 2**20:.0f} MB",
            )
        if self.returncode < 0 and -self.returncode in _CRASH_SIGNALS:
            name = signal.Signals(-self.returncode).name
            return MediaError("decoder_crashed", f"{what} crashed ({name})")
        return None

    @property
    def last_line(self) -> str:
        lines = self.stderr_tail.strip().splitlines()
        return lines[-1][:200] if lines else f"exit status {self.returncode}"


class DecoderProcess:
    """A decoder subprocess under ``budget``: address space, CPU seconds and a wall-clock
    deadline, reading nothing from stdin; the caller reads ``stdout``; stderr is drained by a
    thread (only its last few KB are kept), so the decoder can never block on a full pipe."""

    def __init__(self, argv: Sequence[str], budget: Budget) -> None:
        self.budget = budget
        self.proc = subprocess.Popen(
            list(argv),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            preexec_fn=lambda: _limit_child(budget),
        )
        assert self.proc.stdout is not None and self.proc.stderr is not None
        self.stdout = self.proc.stdout
        self._tail = bytearray()
        self._lines = 0
        self._timed_out = False
        self._drain = threading.Thread(target=self._drain_stderr, daemon=True)
        self._drain.start()
        self._timer = threading.Timer(budget.wall_s, self._expire)
        self._timer.daemon = True
        self._timer.start()

    def _drain_stderr(self) -> None:
        stream = self.proc.stderr
        assert stream is not None
        while chunk := stream.read1(65536):
            self._lines += chunk.count(b"\n")
            self._tail += chunk
            if len(self._tail) > 2 * _STDERR_TAIL_BYTES:
                del self._tail[:-_STDERR_TAIL_BYTES]

    def _expire(self) -> None:
        self._timed_out = True
        self.kill()

    def kill(self) -> None:
        with contextlib.suppress(ProcessLookupError):
            self.proc.kill()

    def wait(self) -> DecoderExit:
        """Wait for the decoder to exit (the deadline still applies) and say how it ended."""
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        self._timer.cancel()
        self._drain.join(timeout=5)
        self.stdout.close()
        assert self.proc.stderr is not None
        self.proc.stderr.close()
        tail = bytes(self._tail[-_STDERR_TAIL_BYTES:]).decode("utf-8", "replace")
        return DecoderExit(
            returncode=self.proc.returncode,
            cpu_s=usage.ru_utime + usage.ru_stime,
            timed_out=self._timed_out,
            stderr_tail=tail,
            stderr_lines=self._lines,
        )

    def __enter__(self) -> DecoderProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.proc.returncode is None:
            self.kill()
            with contextlib.suppress(ChildProcessError):
                self.wait()


def run_decoder(
    argv: Sequence[str], budget: Budget, what: str, max_output: int = 1 << 20
) -> tuple[bytes, DecoderExit]:
    """Run a decoder to completion under ``budget``; its stdout (small outputs such as ffprobe's
    JSON: at most ``max_output`` bytes are kept) and how it ended. Raises the MediaError of a
    limit it hit."""
    with DecoderProcess(argv, budget) as decoder:
        out = decoder.stdout.read(max_output)
        while decoder.stdout.read(65536):
            pass
        ended = decoder.wait()
    failure = ended.failure(budget, what)
    if failure is not None:
        raise failure
    return out, ended
