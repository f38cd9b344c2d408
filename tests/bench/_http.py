"""The benches' HTTP client: a few tens of microseconds of CPU a request.

A general client (aiohttp) spends 300-400 us of CPU a request on this machine, which the
load generators then take from the two cores the servers they measure share with them.
This one writes prepared request bytes on a keep-alive HTTP/1.1 connection and reads the
answer by its Content-Length (or its chunks); that is all the benches need.
"""

from __future__ import annotations

import asyncio
from urllib.parse import urlsplit


def request_head(method: str, url: str) -> tuple[bytes, tuple[str, int]]:
    """The request line and Host header for `url`, and the address to connect to."""
    parts = urlsplit(url)
    target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    head = f"{method} {target} HTTP/1.1\r\nHost: {parts.netloc}\r\n".encode()
    return head, (parts.hostname or "127.0.0.1", parts.port or 80)


def header_lines(headers: dict[str, str]) -> bytes:
    return b"".join(f"{name}: {value}\r\n".encode("latin-1") for name, value in headers.items())


class Connection:
    """One keep-alive connection; reconnects when the server closes it. `request` takes the
    whole message (head, headers, blank line, body) and answers (status, body)."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None
        self.head = b""  # the last answer's status line and headers, as received

    async def request(self, message: bytes) -> tuple[int, bytes]:
        if self.writer is None:
            self.reader, self.writer = await asyncio.open_connection(self.host, self.port)
        assert self.reader is not None
        self.writer.write(message)
        head = self.head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        lower = head.lower()
        at = lower.find(b"\r\ncontent-length:")
        if status in (204, 304):  # no body, whatever the headers say
            body = b""
        elif at >= 0:
            length = int(lower[at + 17 : lower.index(b"\r\n", at + 2)])
            body = await self.reader.readexactly(length)
        elif b"\r\ntransfer-encoding: chunked" in lower:
            body = await self._chunks()
        else:  # the answer ends when the connection does
            body = await self.reader.read()
            lower += b"\r\nconnection: close"
        if b"\r\nconnection: close" in lower:
            self.close()
        return status, body

    async def _chunks(self) -> bytes:
        assert self.reader is not None
        parts: list[bytes] = []
        while True:
            size = int((await self.reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await self._trailers()
                return b"".join(parts)
            parts.append((await self.reader.readexactly(size + 2))[:-2])

    async def _trailers(self) -> None:
        assert self.reader is not None
        while await self.reader.readuntil(b"\r\n") != b"\r\n":
            pass

    def close(self) -> None:
        if self.writer is not None:
            self.writer.close()
        self.reader = self.writer = None


def header_value(head: bytes, name: bytes) -> str | None:
    """The value of header `name` (lower case) in an answer's head, if it is there."""
    for line in head.split(b"\r\n")[1:]:
        key, _, value = line.partition(b":")
        if key.strip().lower() == name:
            return value.strip().decode("latin-1")
    return None
