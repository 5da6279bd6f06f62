"""The gateway a session names, and what it offers: its kernelspecs, and which one a notebook
gets there.

A session whose environment has `JUPYTER_GATEWAY_URL` runs every kernel on that gateway, so the
kernelspecs that count are the gateway's (`GET /api/kernelspecs`), never this machine's, and no
local Python environment is chosen. In order: the call's `kernel_name` (one of the gateway's
kernelspecs), the kernelspec the notebook's metadata names if the gateway has it, the
gateway's default kernelspec. One REST client per gateway and credentials is kept (its
kernelspecs are cached and refreshed when a name is not found).
"""

from __future__ import annotations

import hashlib
import json
import threading
from collections.abc import Mapping
from pathlib import Path

from nb_mcp.actors.environment import KernelChoice, KernelMetadata
from nb_mcp.actors.gateway_client import GatewayClient, GatewayError, KernelSpecs
from nb_mcp.actors.gateway_settings import GatewaySettings, GatewaySettingsError
from nb_mcp.actors.log import emit

_CLIENTS: dict[str, GatewayClient] = {}
_WARNED: set[tuple[str, str]] = set()
_LOCK = threading.Lock()


class GatewayRefused(ValueError):
    """The session's gateway cannot give this kernel; the message names it and says why."""

    def __init__(self, message: str, missing_kernelspec: bool = False) -> None:
        super().__init__(message)
        self.missing_kernelspec = missing_kernelspec


def settings_of(env: Mapping[str, str]) -> GatewaySettings | None:
    """The gateway a session's environment names (None: kernels run here)."""
    try:
        return GatewaySettings.from_env(env)
    except GatewaySettingsError as error:
        raise GatewayRefused(f"{error} (in the environment of the client that runs nb)") from None


def client_for(settings: GatewaySettings) -> GatewayClient:
    """The shared client for this gateway and these credentials."""
    key = hashlib.sha256(
        json.dumps([settings.url, settings.auth_headers(), repr(settings)]).encode()
    ).hexdigest()
    with _LOCK:
        client = _CLIENTS.get(key)
        if client is None:
            client = _CLIENTS[key] = GatewayClient(settings)
        return client


def warn_if_plain_text(settings: GatewaySettings, session_id: str, notebook: Path) -> None:
    """A warning event, once per session and gateway, if it is reached unencrypted over the
    network (the token, the code and the outputs would cross it in the clear)."""
    why = settings.plain_text_to_remote_host()
    with _LOCK:
        if not why or (session_id, settings.url) in _WARNED:
            return
        _WARNED.add((session_id, settings.url))
    emit(
        "gateway.insecure",
        f"kernels of session {session_id} run on a gateway reached unencrypted: {why}",
        level="warning",
        notebook=str(notebook),
        gateway_url=settings.url,
        warning=why,
    )


def kernelspecs(settings: GatewaySettings) -> KernelSpecs:
    try:
        return client_for(settings).kernelspecs(refresh=True)
    except GatewayError as error:
        raise GatewayRefused(str(error)) from None


def choose(
    settings: GatewaySettings, requested: str | None, metadata: KernelMetadata
) -> KernelChoice:
    """The gateway kernelspec a notebook runs in, by the rules in this module's docstring."""
    client = client_for(settings)
    where = f"on the gateway at {settings.url}"
    if requested:
        if "/" in requested or requested.startswith("~"):
            raise GatewayRefused(
                f"kernels of this session run {where} (JUPYTER_GATEWAY_URL), which cannot use "
                f"the local Python environment {requested!r}; pass one of its kernelspecs "
                "(list_kernels shows them)"
            )
        try:
            client.check_kernelspec(requested)
        except GatewayError as error:
            raise GatewayRefused(str(error), error.reason == "kernelspec") from None
        return _choice(client.kernelspecs(), requested, f"kernel_name given by the call, {where}")
    try:
        specs = client.kernelspecs()
    except GatewayError as error:
        raise GatewayRefused(str(error)) from None
    named = metadata.kernelspec_name
    if named and named in specs.specs:
        return _choice(specs, named, f"the notebook's metadata names it, {where}")
    default = specs.default if specs.default in specs.specs else None
    default = default or ("python3" if "python3" in specs.specs else None)
    if default is None:
        listed = ", ".join(specs.names) or "none"
        raise GatewayRefused(
            f"the gateway at {settings.url} names no default kernelspec; pass kernel_name "
            f"(it has: {listed})"
        )
    why = f"the notebook's {named!r} is not one of its kernelspecs" if named else "its default"
    return _choice(specs, default, f"{why}, {where}")


def _choice(specs: KernelSpecs, name: str, rule: str) -> KernelChoice:
    spec = _spec(specs, name)
    return KernelChoice(
        kernelspec=name,
        display_name=str(spec.get("display_name") or name),
        language=str(spec.get("language") or ""),
        rule=rule,
        explicit=rule.startswith("kernel_name"),
    )


def _spec(specs: KernelSpecs, name: str) -> dict[str, object]:
    entry = specs.specs.get(name)
    spec = entry.get("spec") if isinstance(entry, dict) else None
    return spec if isinstance(spec, dict) else {}


def listed(settings: GatewaySettings, specs: KernelSpecs) -> dict[str, tuple[str, str, str]]:
    """The gateway's kernelspecs as list_kernels shows them: name -> (display name,
    language, where)."""
    found = {}
    for name in specs.names:
        spec = _spec(specs, name)
        default = " (its default)" if name == specs.default else ""
        found[name] = (
            str(spec.get("display_name") or name),
            str(spec.get("language") or ""),
            f"on the gateway at {settings.url}{default}",
        )
    return found
