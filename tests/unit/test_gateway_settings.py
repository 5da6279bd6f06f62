"""Gateway settings from a session's environment: jupyter_server's names and defaults, clear
errors naming the variable, and no secret in any text the settings produce."""

from __future__ import annotations

import json

import pytest
from nb_mcp.actors.gateway_settings import GatewaySettings, GatewaySettingsError

TOKEN = "tok-4f9a1c"


def settings(**env: str) -> GatewaySettings:
    found = GatewaySettings.from_env({"JUPYTER_GATEWAY_URL": "https://gw.example:8888/", **env})
    assert found is not None
    return found


def test_no_gateway_url_means_kernels_run_locally() -> None:
    assert GatewaySettings.from_env({}) is None
    assert GatewaySettings.from_env({"JUPYTER_GATEWAY_URL": "  "}) is None
    assert GatewaySettings.from_env({"JUPYTER_GATEWAY_AUTH_TOKEN": TOKEN}) is None


def test_the_defaults_are_jupyter_servers_and_enterprise_gateways() -> None:
    found = settings()
    assert found.url == "https://gw.example:8888"
    assert found.ws_url == "wss://gw.example:8888"
    assert found.request_timeout == 42.0 and found.connect_timeout == 40.0
    assert found.launch_timeout == 30.0  # Enterprise Gateway's EG_KERNEL_LAUNCH_TIMEOUT
    assert found.validate_cert is True
    assert found.kernels_endpoint == "/api/kernels"
    assert found.kernelspecs_endpoint == "/api/kernelspecs"
    assert found.auth_headers() == {}


def test_every_jupyter_gateway_variable_is_read() -> None:
    found = settings(
        JUPYTER_GATEWAY_WS_URL="wss://ws.example/",
        JUPYTER_GATEWAY_AUTH_TOKEN=TOKEN,
        JUPYTER_GATEWAY_HEADERS='{"X-Team": "ml"}',
        JUPYTER_GATEWAY_VALIDATE_CERT="false",
        JUPYTER_GATEWAY_REQUEST_TIMEOUT="120",
        JUPYTER_GATEWAY_CONNECT_TIMEOUT="5.5",
        JUPYTER_GATEWAY_CLIENT_CERT="/certs/me.pem",
        JUPYTER_GATEWAY_CLIENT_KEY="/certs/me.key",
        JUPYTER_GATEWAY_CA_CERTS="/certs/ca.pem",
        KERNEL_LAUNCH_TIMEOUT="600",
    )
    assert found.ws_url == "wss://ws.example"
    assert found.auth_headers() == {"X-Team": "ml", "Authorization": f"token {TOKEN}"}
    assert found.validate_cert is False
    assert (found.request_timeout, found.connect_timeout) == (120.0, 5.5)
    assert (found.client_cert, found.client_key, found.ca_certs) == (
        "/certs/me.pem",
        "/certs/me.key",
        "/certs/ca.pem",
    )
    assert found.launch_timeout == 600.0
    assert found.start_timeout == 602.0  # the launch plus jupyter_server's 2 s pad


def test_a_header_of_the_same_name_wins_over_the_token_as_in_jupyter_server() -> None:
    found = settings(
        JUPYTER_GATEWAY_AUTH_TOKEN=TOKEN,
        JUPYTER_GATEWAY_HEADERS=json.dumps({"Authorization": "Bearer abc"}),
    )
    assert found.auth_headers() == {"Authorization": "Bearer abc"}
    custom = settings(
        JUPYTER_GATEWAY_AUTH_TOKEN=TOKEN,
        JUPYTER_GATEWAY_AUTH_HEADER_KEY="X-Api-Key",
        JUPYTER_GATEWAY_AUTH_SCHEME="",
    )
    assert custom.auth_headers() == {"X-Api-Key": TOKEN}


@pytest.mark.parametrize(
    ("name", "value", "says"),
    [
        ("JUPYTER_GATEWAY_URL", "gw.example:8888", "http:// or https:// URL"),
        ("JUPYTER_GATEWAY_URL", "ftp://gw.example", "http:// or https:// URL"),
        ("JUPYTER_GATEWAY_URL", "http://gw.example:99999", "bad port"),
        ("JUPYTER_GATEWAY_URL", "http://me:pw@gw.example", "must not carry a user"),
        ("JUPYTER_GATEWAY_URL", "http://gw.example/?token=abc", "must not have a ?query"),
        ("JUPYTER_GATEWAY_WS_URL", "http://gw.example", "ws:// or wss://"),
        ("JUPYTER_GATEWAY_REQUEST_TIMEOUT", "soon", "number of seconds"),
        ("JUPYTER_GATEWAY_REQUEST_TIMEOUT", "0", "positive"),
        ("JUPYTER_GATEWAY_CONNECT_TIMEOUT", "-1", "positive"),
        ("JUPYTER_GATEWAY_CONNECT_TIMEOUT", "inf", "positive"),
        ("KERNEL_LAUNCH_TIMEOUT", "ten minutes", "number of seconds"),
        ("JUPYTER_GATEWAY_VALIDATE_CERT", "maybe", "true or false"),
        ("JUPYTER_GATEWAY_HEADERS", '["X-Team"]', "JSON object"),
        ("JUPYTER_GATEWAY_HEADERS", '{"X-Retries": 3}', "JSON object"),
        ("JUPYTER_GATEWAY_KERNELS_ENDPOINT", "api/kernels", "starting with /"),
        ("JUPYTER_GATEWAY_CLIENT_KEY", "/certs/me.key", "JUPYTER_GATEWAY_CLIENT_CERT is not"),
    ],
)
def test_a_bad_value_is_an_error_naming_its_variable(name: str, value: str, says: str) -> None:
    env = {"JUPYTER_GATEWAY_URL": "https://gw.example", name: value}
    with pytest.raises(GatewaySettingsError) as bad:
        GatewaySettings.from_env(env)
    assert name in str(bad.value) and says in str(bad.value)


def test_broken_headers_json_does_not_repeat_its_secret() -> None:
    with pytest.raises(GatewaySettingsError) as bad:
        settings(JUPYTER_GATEWAY_HEADERS='{"Authorization": "Bearer s3cr3t"')
    assert "s3cr3t" not in str(bad.value)
    assert "not valid JSON" in str(bad.value)


def test_no_text_the_settings_make_shows_a_secret() -> None:
    found = settings(
        JUPYTER_GATEWAY_AUTH_TOKEN=TOKEN,
        JUPYTER_GATEWAY_HEADERS=json.dumps({"X-Key": "hdr-s3cr3t"}),
        JUPYTER_GATEWAY_HTTP_USER="me",
        JUPYTER_GATEWAY_HTTP_PWD="pw-s3cr3t",
    )
    for text in (repr(found), str(found), json.dumps(found.describe()), f"{found}"):
        assert TOKEN not in text
        assert "hdr-s3cr3t" not in text and "pw-s3cr3t" not in text
    assert found.describe()["token"] == "set"
    assert found.describe()["headers"] == ["X-Key"]


def test_plain_http_to_another_host_is_detected_and_loopback_is_not() -> None:
    for url in ("http://127.0.0.1:8888", "http://localhost:8888", "http://[::1]:8888"):
        local = GatewaySettings.from_env({"JUPYTER_GATEWAY_URL": url})
        assert local is not None and local.plain_text_to_remote_host() is None
    assert settings().plain_text_to_remote_host() is None  # https
    remote = GatewaySettings.from_env({"JUPYTER_GATEWAY_URL": "http://gpu-node.lab:8888"})
    assert remote is not None
    warning = remote.plain_text_to_remote_host()
    assert warning and "gpu-node.lab" in warning and "unencrypted" in warning
    mixed = settings(JUPYTER_GATEWAY_WS_URL="ws://gpu-node.lab:8888")
    assert "JUPYTER_GATEWAY_WS_URL" in (mixed.plain_text_to_remote_host() or "")


def test_the_kernel_env_carries_kernel_variables_and_the_allowed_ones_only() -> None:
    found = settings(
        KERNEL_WORKING_DIR="/data/project",
        KERNEL_NAMESPACE="team-ml",
        JUPYTER_GATEWAY_ALLOWED_ENVS="SPARK_HOME, HF_HOME",
        SPARK_HOME="/opt/spark",
        AWS_SECRET_ACCESS_KEY="never",
        JUPYTER_GATEWAY_AUTH_TOKEN=TOKEN,
        USER="ada",
    )
    assert found.kernel_env == {
        "KERNEL_WORKING_DIR": "/data/project",
        "KERNEL_NAMESPACE": "team-ml",
        "SPARK_HOME": "/opt/spark",
        "KERNEL_USERNAME": "ada",
        "KERNEL_LAUNCH_TIMEOUT": "30",
    }


def test_kernel_username_comes_from_the_session_then_basic_auth_then_the_user() -> None:
    assert settings(KERNEL_USERNAME="svc", USER="ada").kernel_env["KERNEL_USERNAME"] == "svc"
    assert (
        settings(JUPYTER_GATEWAY_HTTP_USER="bob", USER="ada").kernel_env["KERNEL_USERNAME"] == "bob"
    )
    assert settings(LOGNAME="lin").kernel_env["KERNEL_USERNAME"] == "lin"
    assert settings().kernel_env["KERNEL_USERNAME"]  # this process's user, never empty
