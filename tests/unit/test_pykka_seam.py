"""KernelProcess puts its KernelInfo up after every message by overriding pykka's private
`_handle_receive` (its one dispatch for tells, asks and proxy calls). A pykka that renamed it
would silently stop the facade's view of the kernel from moving: this says so loudly."""

from __future__ import annotations

from typing import Any

import pykka


class _Counting(pykka.ThreadingActor):
    def __init__(self) -> None:
        super().__init__()
        self.handled: list[str] = []

    def _handle_receive(self, message: Any) -> Any:
        try:
            return super()._handle_receive(message)
        finally:
            self.handled.append(type(message).__name__)

    def on_receive(self, message: Any) -> Any:
        return message

    def answer(self) -> int:
        return 42

    def seen(self) -> list[str]:
        return list(self.handled)


def test_every_tell_ask_and_proxy_call_goes_through_the_dispatch_kernel_process_overrides():
    ref = _Counting.start()
    try:
        ref.tell("a tell")
        assert ref.ask("an ask", timeout=5) == "an ask"
        assert ref.proxy().answer().get(timeout=5) == 42
        seen = ref.proxy().seen().get(timeout=5)
        # the tell, the ask and the proxy call (this call's own is added once it answered)
        assert len(seen) == 3, seen
    finally:
        ref.stop()
