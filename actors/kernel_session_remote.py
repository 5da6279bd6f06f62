"""What only a gateway's channels say, a side of KernelSession (actors/kernel_session.py, which
owns the state used here): the websocket dropped and came back, the gateway stayed unreachable,
the gateway says the kernel died.
"""

from __future__ import annotations

from typing import Any

from nb_mcp.actors.gateway_channels import ChannelsResumed, GatewayLost, RemoteKernelDied
from nb_mcp.actors.kernel_ends import CellEnd
from nb_mcp.actors.kernel_messages import Arrival, RemoteDeath


class RemoteChannels:
    _kernel: Any
    _cell: Any
    _channels: Any
    _events: Any
    _tell_process: Any
    _send_probe: Any
    _arm: Any
    _close_channels: Any

    def _on_channels_resumed(self, resumed: ChannelsResumed) -> None:
        """A gateway's websocket dropped and is back, on the same session at the gateway."""
        self._events.channels_resumed(resumed.gap_sec, len(resumed.maybe_lost))
        self._cell.reconnected("the connection to the kernel", resumed.maybe_lost)
        if self._channels is not None:
            self._send_probe()  # its answer bounds the wait for an idle lost in the gap
            self._arm()

    def _on_remote_kernel_died(self, died: RemoteKernelDied) -> None:
        self._tell_process(RemoteDeath(died.reason))  # it acts on it as on any death

    def _on_gateway_lost(self, lost: GatewayLost) -> None:
        """The gateway stayed unreachable: the kernel may live on there. The cell ends; the
        next execution reconnects. A kernel never ready yet failed to start (the process acts)."""
        if self._kernel is not None and self._kernel.arrival is Arrival.STARTED:
            why = f"the gateway at {lost.url} never opened its channels ({lost.error})"
            return self._tell_process(RemoteDeath(why))
        self._events.gateway_lost(lost.url, lost.unreachable_sec, lost.error)
        self._cell.end(CellEnd.gateway_lost(lost.url, lost.unreachable_sec, lost.error))
        self._close_channels()
