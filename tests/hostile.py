"""What a hostile or merely real network sends: bodies in pieces, image bombs, peak memory."""

from __future__ import annotations

import asyncio
import io
import re
import struct
import zlib
from pathlib import Path

from PIL import Image

MB = 1024 * 1024


async def post_in_pieces(
    port: int,
    path: str,
    body: bytes,
    headers: dict[str, str],
    *,
    pieces: int = 3,
    delay: float = 0.3,
    chunked: bool = False,
) -> tuple[int, bytes]:
    """POST `body` over a raw TCP connection in `pieces` segments `delay` s apart.

    Loopback otherwise delivers a small body in one piece, which hides a server that reads
    only what happens to be buffered. Returns the status and the response body.
    """
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        head = [f"POST {path} HTTP/1.1", "Host: 127.0.0.1", "Connection: close"]
        head += [f"{name}: {value}" for name, value in headers.items()]
        head.append("Transfer-Encoding: chunked" if chunked else f"Content-Length: {len(body)}")
        writer.write(("\r\n".join(head) + "\r\n\r\n").encode())
        await writer.drain()
        size = -(-len(body) // pieces)
        for start in range(0, len(body), size):
            await asyncio.sleep(delay)
            part = body[start : start + size]
            writer.write(f"{len(part):x}\r\n".encode() + part + b"\r\n" if chunked else part)
            await writer.drain()
        if chunked:
            writer.write(b"0\r\n\r\n")
            await writer.drain()
        answer = await asyncio.wait_for(reader.read(), timeout=30)
    finally:
        writer.close()
        await writer.wait_closed()
    status_line, _, rest = answer.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def png_bomb(side: int, color_type: int = 6) -> bytes:
    """A PNG of side x side px (RGBA by default) that is tiny on disk: all zero rows.

    Written row by row through zlib, so making it never holds the decoded image.
    """
    channels = {0: 1, 2: 3, 6: 4}[color_type]
    row = b"\x00" * (1 + side * channels)  # filter byte + pixels
    packer = zlib.compressobj(9)
    idat = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    header = struct.pack(">IIBBBBB", side, side, 8, color_type, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", header) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
    )


def tiff_bomb(side: int) -> bytes:
    """A 1-bit TIFF of side x side px, a few KB on disk (CCITT group 4 of a blank page)."""
    out = io.BytesIO()
    Image.new("1", (side, side), 0).save(out, "TIFF", compression="group4")
    return out.getvalue()


def _status_kb(field: str) -> int:
    match = re.search(rf"^{field}:\s+(\d+) kB", Path("/proc/self/status").read_text(), re.M)
    assert match is not None, field
    return int(match.group(1))


def reset_peak_memory() -> int:
    """Start a new peak-memory measurement (Linux clear_refs); the resident size now, in bytes."""
    Path("/proc/self/clear_refs").write_text("5")
    return _status_kb("VmRSS") * 1024


def peak_memory() -> int:
    """The process's peak resident size since the last reset, in bytes."""
    return _status_kb("VmHWM") * 1024
