"""Pure: Jupyter messages to and from the kernel channels websocket's frames.

Two protocols share `/api/kernels/{id}/channels`:
- `v1.kernel.websocket.jupyter.org` (jupyter_server >= 1.24 offers it): a binary frame of
  little-endian uint64 offsets, then the channel name, then the message's packed parts
  (header, parent_header, metadata, content, buffers…), exactly as on the kernel's zmq socket
  minus identities and signature (the server signs what it forwards);
- the legacy protocol: one JSON text frame per message with a `channel` key, or, for a message
  with binary buffers, jupyter_server's binary layout (big-endian uint32 count and offsets, the
  JSON, the buffers).
Decoded messages have the shape jupyter_client's `Session.deserialize` gives the local pump,
dates parsed, so the KernelSession cannot tell the backends apart.
"""

from __future__ import annotations

import json
import struct
from typing import Any

from jupyter_client.jsonutil import extract_dates, json_default
from jupyter_client.session import Session

V1_PROTOCOL = "v1.kernel.websocket.jupyter.org"


class BadFrame(ValueError):
    """A frame that is not a Jupyter message in the negotiated protocol."""


def encode(
    msg: dict[str, Any], channel: str, protocol: str | None, session: Session
) -> str | bytes:
    """One outgoing message as the frame the negotiated protocol wants."""
    if protocol == V1_PROTOCOL:
        parts = [
            session.pack(msg["header"]),
            session.pack(msg["parent_header"]),
            session.pack(msg["metadata"]),
            session.pack(msg["content"]),
            *[bytes(buffer) for buffer in msg.get("buffers") or []],
        ]
        return _v1_frame(channel, parts)
    legacy = {key: msg[key] for key in ("header", "parent_header", "metadata", "content")}
    legacy["channel"] = channel
    legacy["buffers"] = []
    return json.dumps(legacy, default=json_default)


def decode(
    frame: str | bytes, protocol: str | None, session: Session
) -> tuple[str, dict[str, Any]]:
    """One incoming frame as (channel, message)."""
    try:
        if protocol == V1_PROTOCOL:
            if isinstance(frame, str):
                raise BadFrame("a text frame on the v1 protocol, which sends only binary ones")
            channel, parts = _split_v1(frame)
            if len(parts) < 4:
                raise BadFrame(f"a v1 frame with {len(parts)} parts, fewer than 4")
            header, parent, metadata, content = (session.unpack(part) for part in parts[:4])
            return channel, _message(header, parent, metadata, content, list(parts[4:]))
        raw = _split_legacy_binary(frame) if isinstance(frame, bytes) else (json.loads(frame), [])
        body, buffers = raw
        channel = body.get("channel")
        if not isinstance(channel, str):
            raise BadFrame("a legacy message without its 'channel'")
        return channel, _message(
            body["header"],
            body["parent_header"],
            body.get("metadata") or {},
            body["content"],
            buffers,
        )
    except BadFrame:
        raise
    except (ValueError, KeyError, TypeError, IndexError, struct.error) as error:
        raise BadFrame(f"{type(error).__name__}: {error}") from error


def _message(
    header: dict[str, Any],
    parent: dict[str, Any],
    metadata: dict[str, Any],
    content: dict[str, Any],
    buffers: list[bytes],
) -> dict[str, Any]:
    header = extract_dates(header)
    return {
        "header": header,
        "msg_id": header["msg_id"],
        "msg_type": header["msg_type"],
        "parent_header": extract_dates(parent),
        "metadata": metadata,
        "content": content,
        "buffers": buffers,
    }


def _v1_frame(channel: str, parts: list[bytes]) -> bytes:
    name = channel.encode()
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(name))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = struct.pack(f"<{len(offsets) + 1}Q", len(offsets), *offsets)
    return b"".join([head, name, *parts])


def _split_v1(frame: bytes) -> tuple[str, list[bytes]]:
    (count,) = struct.unpack_from("<Q", frame, 0)
    if count < 2 or 8 * (count + 1) > len(frame):
        raise BadFrame(f"a v1 frame announcing {count} offsets in {len(frame)} bytes")
    offsets = list(struct.unpack_from(f"<{count}Q", frame, 8))
    if offsets != sorted(offsets) or offsets[-1] > len(frame):
        raise BadFrame("a v1 frame whose offsets run backwards or past its end")
    channel = frame[offsets[0] : offsets[1]].decode()
    return channel, [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]


def _split_legacy_binary(frame: bytes) -> tuple[dict[str, Any], list[bytes]]:
    (count,) = struct.unpack_from("!I", frame, 0)
    if count < 1 or 4 * (count + 1) > len(frame):
        raise BadFrame(f"a binary frame announcing {count} parts in {len(frame)} bytes")
    offsets = [*struct.unpack_from(f"!{count}I", frame, 4), len(frame)]
    chunks = [frame[offsets[i] : offsets[i + 1]] for i in range(count)]
    return json.loads(chunks[0].decode()), chunks[1:]
