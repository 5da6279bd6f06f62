"""The gateway's REST API: kernelspecs, and starting, finding, interrupting, restarting and
deleting kernels on a Jupyter Kernel Gateway or Enterprise Gateway.

Every failure is a `GatewayError` whose message an agent can act on: it names the gateway's
URL (never the token) and the reason (a wrong or missing token, an unknown kernelspec with the
ones that exist, the gateway's own error, a refused connection, a timeout).
"""

from __future__ import annotations

import json
import ssl
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

import httpx2
from nb_mcp.actors.gateway_settings import GatewaySettings

_DETAIL_CHARS = 300


class GatewayError(Exception):
    """A gateway request failed. `reason` is one of: auth, kernelspec, quota, bad_request,
    gateway_error, unreachable, timeout, tls, protocol."""

    def __init__(self, message: str, *, url: str, reason: str, status: int | None = None):
        super().__init__(message)
        self.url = url
        self.reason = reason
        self.status = status


@dataclass(frozen=True)
class KernelSpecs:
    default: str | None
    names: list[str]
    specs: dict[str, Any]


def ssl_context(settings: GatewaySettings) -> ssl.SSLContext:
    """The TLS context both the REST client and the websocket use."""
    try:
        context = ssl.create_default_context(cafile=settings.ca_certs)
        if not settings.validate_cert:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        if settings.client_cert:
            context.load_cert_chain(settings.client_cert, settings.client_key)
    except (OSError, ssl.SSLError) as error:
        raise GatewayError(
            f"cannot set up TLS for the gateway at {settings.url}: {error} (check "
            "JUPYTER_GATEWAY_CA_CERTS, JUPYTER_GATEWAY_CLIENT_CERT and _CLIENT_KEY)",
            url=settings.url,
            reason="tls",
        ) from error
    return context


class GatewayClient:
    """A synchronous client for one gateway; safe to share between threads."""

    def __init__(self, settings: GatewaySettings) -> None:
        self.settings = settings
        self.url = settings.url
        auth = (
            httpx2.BasicAuth(settings.http_user, settings.http_pwd or "")
            if settings.http_user
            else None
        )
        self._http = httpx2.Client(
            base_url=settings.url,
            headers=settings.auth_headers(),
            auth=auth,
            verify=ssl_context(settings) if settings.url.startswith("https") else True,
            timeout=httpx2.Timeout(settings.request_timeout, connect=settings.connect_timeout),
            # The session's settings say where the gateway is; the daemon's own proxy
            # variables are another project's business.
            trust_env=False,
        )
        self._kernelspecs: KernelSpecs | None = None

    def close(self) -> None:
        self._http.close()

    # ------------------------------------------------------------ kernelspecs

    def kernelspecs(self, refresh: bool = False) -> KernelSpecs:
        if self._kernelspecs is None or refresh:
            body = self._json("GET", self.settings.kernelspecs_endpoint, what="list kernelspecs")
            specs = body.get("kernelspecs") if isinstance(body, dict) else None
            if not isinstance(specs, dict):
                raise self._error(
                    "its kernelspecs answer has no 'kernelspecs' object", "protocol", None
                )
            self._kernelspecs = KernelSpecs(body.get("default"), sorted(specs), specs)
        return self._kernelspecs

    def check_kernelspec(self, name: str) -> None:
        specs = self.kernelspecs()
        if name not in specs.specs:
            specs = self.kernelspecs(refresh=True)  # installed since we last asked?
        if name not in specs.specs:
            raise self._error(
                f"it has no kernelspec named {name!r} (it has: {', '.join(specs.names) or 'none'})",
                "kernelspec",
                None,
            )

    # ------------------------------------------------------------ kernels

    def start_kernel(self, name: str, env: Mapping[str, str]) -> dict[str, Any]:
        """Start a kernel (POST); return its model, whose `id` names it from now on."""
        self.check_kernelspec(name)
        model = self._json(
            "POST",
            self.settings.kernels_endpoint,
            what=f"start a {name!r} kernel",
            body={"name": name, "env": dict(env)},
            timeout=self.settings.start_timeout,
        )
        if not isinstance(model, dict) or not model.get("id"):
            raise self._error("its start answer has no kernel id", "protocol", None)
        return model

    def kernel(self, kernel_id: str) -> dict[str, Any] | None:
        """The kernel's model, or None if the gateway has no such kernel (culled, deleted)."""
        try:
            model = self._json("GET", self._kernel_path(kernel_id), what="look up the kernel")
        except GatewayError as error:
            if error.status == 404:
                return None
            raise
        return model if isinstance(model, dict) else None

    def delete_kernel(self, kernel_id: str, timeout: float | None = None) -> bool:
        """Shut the kernel down; False if it was already gone."""
        try:
            self._json(
                "DELETE", self._kernel_path(kernel_id), what="shut down the kernel", timeout=timeout
            )
        except GatewayError as error:
            if error.status == 404:
                return False
            raise
        return True

    def interrupt_kernel(self, kernel_id: str) -> None:
        self._json("POST", self._kernel_path(kernel_id) + "/interrupt", what="interrupt the kernel")

    def restart_kernel(self, kernel_id: str) -> dict[str, Any]:
        model = self._json(
            "POST",
            self._kernel_path(kernel_id) + "/restart",
            what="restart the kernel",
            timeout=self.settings.start_timeout,
        )
        return model if isinstance(model, dict) else {}

    def channels_url(self, kernel_id: str, session_id: str) -> str:
        path = f"{self.settings.kernels_endpoint}/{quote(kernel_id, safe='')}/channels"
        return f"{self.settings.ws_url}{path}?session_id={quote(session_id, safe='')}"

    # ------------------------------------------------------------ plumbing

    def _kernel_path(self, kernel_id: str) -> str:
        return f"{self.settings.kernels_endpoint}/{quote(kernel_id, safe='')}"

    def _json(
        self,
        method: str,
        path: str,
        *,
        what: str,
        body: dict[str, Any] | None = None,
        timeout: float | None = None,
    ) -> Any:
        extra: dict[str, Any] = {}
        if timeout is not None:
            extra["timeout"] = httpx2.Timeout(timeout, connect=self.settings.connect_timeout)
        try:
            response = self._http.request(method, path, json=body, **extra)
        except httpx2.TimeoutException as error:
            limit = timeout or self.settings.request_timeout
            raise self._error(
                f"it did not answer within {limit:g}s while asked to {what} "
                f"({type(error).__name__}; JUPYTER_GATEWAY_REQUEST_TIMEOUT, "
                "JUPYTER_GATEWAY_CONNECT_TIMEOUT, KERNEL_LAUNCH_TIMEOUT)",
                "timeout",
                None,
            ) from error
        except httpx2.ConnectError as error:
            reason = "tls" if "SSL" in str(error) or "certificate" in str(error) else "unreachable"
            raise self._error(
                f"cannot connect to it to {what}: {error or type(error).__name__}", reason, None
            ) from error
        except httpx2.TransportError as error:
            raise self._error(
                f"the connection failed while asked to {what}: {error or type(error).__name__}",
                "unreachable",
                None,
            ) from error
        if response.status_code >= 400:
            raise self._status_error(response, what)
        if response.status_code == 204 or not response.content:
            return None
        try:
            return response.json()
        except ValueError:
            raise self._error(
                f"its answer to {what} is not JSON (HTTP {response.status_code})",
                "protocol",
                response.status_code,
            ) from None

    def _status_error(self, response: httpx2.Response, what: str) -> GatewayError:
        status = response.status_code
        detail = _detail(response)
        if status in (401, 403) and "Resource Limit" not in detail:
            token = (
                "JUPYTER_GATEWAY_AUTH_TOKEN is wrong"
                if self.settings.auth_token
                else ("no JUPYTER_GATEWAY_AUTH_TOKEN is set")
            )
            return self._error(
                f"it refused to {what}: HTTP {status} ({token}, or the user is not allowed)",
                "auth",
                status,
            )
        if status == 403:
            return self._error(
                f"it refused to {what}: HTTP 403, its kernel limit is reached ({detail}); "
                "shut down a kernel there or ask its operator",
                "quota",
                status,
            )
        if "NoSuchKernel" in detail or "No such kernel named" in detail:
            return self._error(f"it has no such kernelspec ({detail})", "kernelspec", status)
        if status == 404:
            return self._error(f"it answered 404 Not Found to {what}", "not_found", status)
        if status < 500:
            return self._error(
                f"it rejected the request to {what}: HTTP {status} {detail}", "bad_request", status
            )
        return self._error(f"it failed to {what}: HTTP {status} {detail}", "gateway_error", status)

    def _error(self, text: str, reason: str, status: int | None) -> GatewayError:
        return GatewayError(
            f"the gateway at {self.url}: {text}", url=self.url, reason=reason, status=status
        )


def _detail(response: httpx2.Response) -> str:
    """The gateway's own words (its JSON `message`/`reason`), short; no traceback."""
    try:
        body = response.json()
    except ValueError:
        text = response.text.strip().splitlines()
        return text[-1][:_DETAIL_CHARS] if text else response.reason_phrase
    if not isinstance(body, dict):
        return json.dumps(body)[:_DETAIL_CHARS]
    message = str(body.get("message") or body.get("reason") or response.reason_phrase)
    if message == "Unknown server error" and body.get("traceback"):
        # Kernel Gateway hides the exception behind this; its traceback's last line names it.
        message = str(body["traceback"]).strip().splitlines()[-1]
    return message[:_DETAIL_CHARS]
