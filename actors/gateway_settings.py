"""Gateway settings, read the way Jupyter reads them: from a client's environment.

A session whose environment has `JUPYTER_GATEWAY_URL` runs its kernels on that Jupyter Kernel
Gateway or Enterprise Gateway. The variable names and defaults are jupyter_server's gateway
client's (jupyter_server/gateway/gateway_client.py), so a user who has set them for JupyterLab
gets the same gateway here; `KERNEL_LAUNCH_TIMEOUT` defaults to Enterprise Gateway's 30 s.
`from_env` is pure: it reads only the mapping it is given, never os.environ or the disk.

A bad value is a `GatewaySettingsError` naming the variable; its message never repeats a
secret (the token, the basic-auth password, header values).
"""

from __future__ import annotations

import ipaddress
import json
import math
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit

DEFAULT_REQUEST_TIMEOUT = 42.0  # jupyter_server's
DEFAULT_CONNECT_TIMEOUT = 40.0  # jupyter_server's
DEFAULT_LAUNCH_TIMEOUT = 30.0  # Enterprise Gateway's EG_KERNEL_LAUNCH_TIMEOUT
DEFAULT_LAUNCH_TIMEOUT_PAD = 2.0  # jupyter_server's
DEFAULT_RETRY_INTERVAL = 1.0  # jupyter_server's
DEFAULT_RETRY_INTERVAL_MAX = 30.0  # jupyter_server's

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


class GatewaySettingsError(ValueError):
    """A gateway variable has a value that cannot be used; the message names it."""


@dataclass(frozen=True)
class GatewaySettings:
    url: str  # http(s)://host[:port][/base], no trailing slash
    ws_url: str  # ws(s)://… the same server, unless JUPYTER_GATEWAY_WS_URL says otherwise
    auth_token: str = field(default="", repr=False)
    auth_header_key: str = "Authorization"
    auth_scheme: str = "token"
    headers: Mapping[str, str] = field(default_factory=dict, repr=False)
    validate_cert: bool = True
    request_timeout: float = DEFAULT_REQUEST_TIMEOUT
    connect_timeout: float = DEFAULT_CONNECT_TIMEOUT
    client_cert: str | None = None
    client_key: str | None = None
    ca_certs: str | None = None
    http_user: str | None = None
    http_pwd: str | None = field(default=None, repr=False)
    kernels_endpoint: str = "/api/kernels"
    kernelspecs_endpoint: str = "/api/kernelspecs"
    launch_timeout: float = DEFAULT_LAUNCH_TIMEOUT
    launch_timeout_pad: float = DEFAULT_LAUNCH_TIMEOUT_PAD
    retry_interval: float = DEFAULT_RETRY_INTERVAL
    retry_interval_max: float = DEFAULT_RETRY_INTERVAL_MAX
    # What the start request's `env` carries: every KERNEL_* of the session's environment,
    # JUPYTER_GATEWAY_ALLOWED_ENVS' names, KERNEL_USERNAME and KERNEL_LAUNCH_TIMEOUT.
    kernel_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @classmethod
    def from_env(cls, env: Mapping[str, str]) -> GatewaySettings | None:
        """The gateway this environment names, or None: kernels run locally."""
        url = env.get("JUPYTER_GATEWAY_URL", "").strip()
        if not url:
            return None
        url = _http_url(url)
        ws_url = env.get("JUPYTER_GATEWAY_WS_URL", "").strip().rstrip("/")
        if ws_url:
            if urlsplit(ws_url).scheme.lower() not in ("ws", "wss") or not urlsplit(ws_url).netloc:
                raise GatewaySettingsError(
                    f"JUPYTER_GATEWAY_WS_URL must be a ws:// or wss:// URL, not {ws_url!r}"
                )
        else:
            ws_url = "ws" + url[len("http") :]
        http_user = env.get("JUPYTER_GATEWAY_HTTP_USER") or None
        launch_timeout = _seconds(env, "KERNEL_LAUNCH_TIMEOUT", DEFAULT_LAUNCH_TIMEOUT)
        client_cert = env.get("JUPYTER_GATEWAY_CLIENT_CERT") or None
        client_key = env.get("JUPYTER_GATEWAY_CLIENT_KEY") or None
        if client_key and not client_cert:
            raise GatewaySettingsError(
                "JUPYTER_GATEWAY_CLIENT_KEY is set but JUPYTER_GATEWAY_CLIENT_CERT is not: "
                "the key is only used with its certificate"
            )
        return cls(
            url=url,
            ws_url=ws_url,
            auth_token=env.get("JUPYTER_GATEWAY_AUTH_TOKEN", ""),
            auth_header_key=env.get("JUPYTER_GATEWAY_AUTH_HEADER_KEY") or "Authorization",
            auth_scheme=env.get("JUPYTER_GATEWAY_AUTH_SCHEME", "token"),
            headers=_headers(env.get("JUPYTER_GATEWAY_HEADERS", "")),
            validate_cert=_boolean(env, "JUPYTER_GATEWAY_VALIDATE_CERT", True),
            request_timeout=_seconds(
                env, "JUPYTER_GATEWAY_REQUEST_TIMEOUT", DEFAULT_REQUEST_TIMEOUT
            ),
            connect_timeout=_seconds(
                env, "JUPYTER_GATEWAY_CONNECT_TIMEOUT", DEFAULT_CONNECT_TIMEOUT
            ),
            client_cert=client_cert,
            client_key=client_key,
            ca_certs=env.get("JUPYTER_GATEWAY_CA_CERTS") or None,
            http_user=http_user,
            http_pwd=env.get("JUPYTER_GATEWAY_HTTP_PWD") or None,
            kernels_endpoint=_endpoint(env, "JUPYTER_GATEWAY_KERNELS_ENDPOINT", "/api/kernels"),
            kernelspecs_endpoint=_endpoint(
                env, "JUPYTER_GATEWAY_KERNELSPECS_ENDPOINT", "/api/kernelspecs"
            ),
            launch_timeout=launch_timeout,
            launch_timeout_pad=_seconds(
                env, "JUPYTER_GATEWAY_LAUNCH_TIMEOUT_PAD", DEFAULT_LAUNCH_TIMEOUT_PAD, zero=True
            ),
            retry_interval=_seconds(
                env, "JUPYTER_GATEWAY_RETRY_INTERVAL", DEFAULT_RETRY_INTERVAL, zero=True
            ),
            retry_interval_max=_seconds(
                env, "JUPYTER_GATEWAY_RETRY_INTERVAL_MAX", DEFAULT_RETRY_INTERVAL_MAX, zero=True
            ),
            kernel_env=_kernel_env(env, http_user, launch_timeout),
        )

    # ------------------------------------------------------------ what callers ask

    def auth_headers(self) -> dict[str, str]:
        """Every header a request carries: JUPYTER_GATEWAY_HEADERS, then the token's own
        (unless those headers already set it, as jupyter_server does)."""
        headers = dict(self.headers)
        if self.auth_token and self.auth_header_key not in headers:
            value = f"{self.auth_scheme} {self.auth_token}" if self.auth_scheme else self.auth_token
            headers[self.auth_header_key] = value
        return headers

    @property
    def start_timeout(self) -> float:
        """How long a start request may take: the launch itself plus the pad, at least a
        request timeout (an image pull can take minutes on a cluster)."""
        return max(self.request_timeout, self.launch_timeout + self.launch_timeout_pad)

    def plain_text_to_remote_host(self) -> str | None:
        """Why requests to this gateway cross the network unencrypted, or None.

        The token and every cell's code and outputs travel in the clear over http:// or ws://
        to any host but this machine; the caller logs a warning event with this text.
        """
        for name, value, plain in (
            ("JUPYTER_GATEWAY_URL", self.url, "http"),
            ("JUPYTER_GATEWAY_WS_URL", self.ws_url, "ws"),
        ):
            parts = urlsplit(value)
            if parts.scheme.lower() == plain and not _is_loopback(parts.hostname or ""):
                return (
                    f"{name} is {parts.scheme}:// to {parts.hostname}, not this machine: the "
                    "token, code and outputs cross the network unencrypted (use https://)"
                )
        return None

    def describe(self) -> dict[str, object]:
        """The settings as an event or status may show them: no secret, no header value."""
        return {
            "url": self.url,
            "ws_url": self.ws_url,
            "token": "set" if self.auth_token else "none",
            "headers": sorted(self.headers),
            "validate_cert": self.validate_cert,
            "request_timeout_sec": self.request_timeout,
            "connect_timeout_sec": self.connect_timeout,
            "launch_timeout_sec": self.launch_timeout,
            "client_cert": self.client_cert,
            "kernel_env": sorted(self.kernel_env),
        }

    def __repr__(self) -> str:
        fields = ", ".join(f"{key}={value!r}" for key, value in self.describe().items())
        return f"GatewaySettings({fields})"

    __str__ = __repr__


# ---------------------------------------------------------------- parsing, one value each


def _http_url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise GatewaySettingsError(
            f"JUPYTER_GATEWAY_URL must be an http:// or https:// URL with a host, not {value!r}"
        )
    if parts.username or parts.password:
        raise GatewaySettingsError(
            "JUPYTER_GATEWAY_URL must not carry a user or password; use "
            "JUPYTER_GATEWAY_AUTH_TOKEN or JUPYTER_GATEWAY_HTTP_USER/_PWD"
        )
    if parts.query or parts.fragment:
        raise GatewaySettingsError(
            "JUPYTER_GATEWAY_URL must not have a ?query or #fragment (a token belongs in "
            "JUPYTER_GATEWAY_AUTH_TOKEN)"
        )
    try:
        parts.port  # noqa: B018 - raises on a port that is not a number in range
    except ValueError:
        raise GatewaySettingsError(f"JUPYTER_GATEWAY_URL has a bad port: {value!r}") from None
    return value.rstrip("/")


def _seconds(env: Mapping[str, str], name: str, default: float, zero: bool = False) -> float:
    raw = env.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        raise GatewaySettingsError(f"{name} must be a number of seconds, not {raw!r}") from None
    if not math.isfinite(value) or value < 0 or (value == 0 and not zero):
        raise GatewaySettingsError(
            f"{name} must be a {'non-negative' if zero else 'positive'} number of seconds, "
            f"not {raw!r}"
        )
    return value


def _boolean(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name, "").strip().lower()
    if not raw:
        return default
    if raw in _TRUE:
        return True
    if raw in _FALSE:
        return False
    raise GatewaySettingsError(f"{name} must be true or false (yes/no, 1/0), not {raw!r}")


def _headers(raw: str) -> dict[str, str]:
    if not raw.strip():
        return {}
    try:
        headers = json.loads(raw)
    except ValueError as error:
        # The value may hold a secret: say where it broke, not what it says.
        raise GatewaySettingsError(
            f"JUPYTER_GATEWAY_HEADERS must be a JSON object of header names to strings; it "
            f"is not valid JSON ({error.msg} at character {error.pos})"
        ) from None
    if not isinstance(headers, dict) or not all(
        isinstance(key, str) and isinstance(value, str) for key, value in headers.items()
    ):
        raise GatewaySettingsError(
            "JUPYTER_GATEWAY_HEADERS must be a JSON object of header names to strings, "
            'e.g. {"X-Team": "ml"}'
        )
    return headers


def _endpoint(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip() or default
    if not value.startswith("/"):
        raise GatewaySettingsError(f"{name} must be a path starting with /, not {value!r}")
    return value.rstrip("/")


def _kernel_env(
    env: Mapping[str, str], http_user: str | None, launch_timeout: float
) -> dict[str, str]:
    allowed = {name.strip() for name in env.get("JUPYTER_GATEWAY_ALLOWED_ENVS", "").split(",")}
    chosen = {
        key: value for key, value in env.items() if key.startswith("KERNEL_") or key in allowed
    }
    # Enterprise Gateway runs (and on Kubernetes names) the kernel as KERNEL_USERNAME.
    chosen.setdefault("KERNEL_USERNAME", http_user or _local_user(env))
    # Always sent, as jupyter_server does: the gateway then waits as long as we do.
    chosen["KERNEL_LAUNCH_TIMEOUT"] = f"{launch_timeout:g}"
    return chosen


def _local_user(env: Mapping[str, str]) -> str:
    for name in ("USER", "LOGNAME"):
        if env.get(name):
            return env[name]
    try:
        return pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        return str(os.getuid())


def _is_loopback(host: str) -> bool:
    if host.lower() in ("localhost", "localhost.localdomain", "ip6-localhost"):
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return host.lower().endswith(".localhost")
