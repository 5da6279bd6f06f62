"""The channels websocket's two wire formats, as jupyter_server writes them: a frame in, the
same message out that the local pump's Session.deserialize would give; and bad frames named."""

from __future__ import annotations

import json
import struct
from datetime import datetime

import pytest
from jupyter_client.session import Session
from nb_mcp.actors import gateway_wire as wire

SESSION = Session(key=b"k")


def kernel_message() -> dict:
    msg = SESSION.msg("stream", {"name": "stdout", "text": "héllo\n"})
    msg["parent_header"] = SESSION.msg_header("execute_request")
    return msg


def server_v1_frame(channel: str, parts: list[bytes]) -> bytes:
    """jupyter_server's serialize_msg_to_ws_v1, written out from its layout."""
    offsets = [8 * (1 + 1 + len(parts) + 1)]
    offsets.append(offsets[-1] + len(channel.encode()))
    for part in parts:
        offsets.append(offsets[-1] + len(part))
    head = len(offsets).to_bytes(8, "little") + b"".join(o.to_bytes(8, "little") for o in offsets)
    return head + channel.encode() + b"".join(parts)


def test_a_v1_frame_from_the_server_decodes_to_the_message_with_dates_parsed() -> None:
    msg = kernel_message()
    parts = [SESSION.pack(msg[key]) for key in ("header", "parent_header", "metadata", "content")]
    channel, decoded = wire.decode(
        server_v1_frame("iopub", [*parts, b"\x00raw"]), wire.V1_PROTOCOL, SESSION
    )
    assert channel == "iopub"
    assert decoded["msg_type"] == "stream" and decoded["msg_id"] == msg["header"]["msg_id"]
    assert decoded["content"] == {"name": "stdout", "text": "héllo\n"}
    assert isinstance(decoded["header"]["date"], datetime)
    assert decoded["parent_header"]["msg_type"] == "execute_request"
    assert decoded["buffers"] == [b"\x00raw"]


def test_what_we_encode_in_v1_is_what_the_server_would_split() -> None:
    msg = kernel_message()
    frame = wire.encode(msg, "shell", wire.V1_PROTOCOL, SESSION)
    assert isinstance(frame, bytes)
    count = int.from_bytes(frame[:8], "little")
    offsets = [int.from_bytes(frame[8 * (i + 1) : 8 * (i + 2)], "little") for i in range(count)]
    assert frame[offsets[0] : offsets[1]] == b"shell"
    parts = [frame[offsets[i] : offsets[i + 1]] for i in range(1, count - 1)]
    assert [json.loads(part) for part in parts][3] == msg["content"]
    assert len(parts) == 4
    assert wire.decode(frame, wire.V1_PROTOCOL, SESSION)[1]["content"] == msg["content"]


def test_legacy_json_round_trips_with_its_channel() -> None:
    msg = kernel_message()
    frame = wire.encode(msg, "control", None, SESSION)
    assert isinstance(frame, str) and json.loads(frame)["channel"] == "control"
    channel, decoded = wire.decode(frame, None, SESSION)
    assert channel == "control" and decoded["content"] == msg["content"]
    assert decoded["buffers"] == []


def test_a_legacy_binary_frame_with_buffers_decodes() -> None:
    body = json.dumps(
        {
            "channel": "iopub",
            "header": {"msg_id": "m1", "msg_type": "comm_msg", "date": "2026-01-01T00:00:00Z"},
            "parent_header": {},
            "metadata": {},
            "content": {"data": {}},
        }
    ).encode()
    buffers = [body, b"\x01\x02", b"\x03"]
    offsets = [4 * (len(buffers) + 1)]
    for buffer in buffers[:-1]:
        offsets.append(offsets[-1] + len(buffer))
    frame = struct.pack(f"!{len(buffers) + 1}I", len(buffers), *offsets) + b"".join(buffers)
    channel, decoded = wire.decode(frame, None, SESSION)
    assert channel == "iopub" and decoded["msg_type"] == "comm_msg"
    assert decoded["buffers"] == [b"\x01\x02", b"\x03"]


@pytest.mark.parametrize(
    ("frame", "protocol", "says"),
    [
        ("{}", wire.V1_PROTOCOL, "text frame"),
        (b"\xff" * 8 + b"x", wire.V1_PROTOCOL, "offsets"),
        (
            (2).to_bytes(8, "little") + (40).to_bytes(8, "little") + (24).to_bytes(8, "little"),
            wire.V1_PROTOCOL,
            "backwards",
        ),
        ('{"header": {}}', None, "channel"),
        ("not json", None, "JSONDecodeError"),
        (b"\x00\x00\x00\x09", None, "parts"),
    ],
)
def test_a_frame_that_is_not_a_message_is_a_badframe(
    frame: str | bytes, protocol: str | None, says: str
) -> None:
    with pytest.raises(wire.BadFrame, match=says):
        wire.decode(frame, protocol, SESSION)
