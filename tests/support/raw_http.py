"""A client that streams a large request body over a raw socket and notes when the answer came.

httpx sends the whole body before it reads; this one reads as soon as the server answers, so a
test can tell whether a server refused a request before reading its body.
"""

from __future__ import annotations

import select
import socket
import time
from dataclasses import dataclass


@dataclass
class EarlyAnswer:
    status: int  # 0 when the server closed without an answer
    sent_bytes: int  # body bytes the server had taken when its answer arrived
    seconds: float
    head: bytes


def post_streaming(
    host: str,
    port: int,
    path: str,
    *,
    authorization: bytes,
    body_bytes: int,
    content_type: str = "application/json",
    timeout_s: float = 120.0,
) -> EarlyAnswer:
    chunk = b"0" * (1 << 20)
    sock = socket.create_connection((host, port), timeout=timeout_s)
    head = (
        (
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {body_bytes}\r\n"
        ).encode()
        + b"Authorization: "
        + authorization
        + b"\r\n\r\n"
    )
    started = time.perf_counter()
    sock.sendall(head)
    sock.setblocking(False)
    sent, answer = 0, b""
    try:
        while time.perf_counter() - started < timeout_s:
            want_write = [sock] if sent < body_bytes else []
            readable, writable, _ = select.select([sock], want_write, [], 1.0)
            if readable:
                try:
                    data = sock.recv(65536)
                except ConnectionError:
                    break
                if not data:
                    break
                answer += data
                if b"\r\n\r\n" in answer:
                    break
            elif writable:
                try:
                    sent += sock.send(chunk[: min(len(chunk), body_bytes - sent)])
                except (BlockingIOError, InterruptedError):
                    pass
                except ConnectionError:
                    body_bytes = sent  # the server hung up: stop writing, read what it said
    finally:
        elapsed = time.perf_counter() - started
        sock.close()
    status = int(answer.split(b" ", 2)[1]) if answer.startswith(b"HTTP/") else 0
    return EarlyAnswer(status=status, sent_bytes=sent, seconds=elapsed, head=answer)
