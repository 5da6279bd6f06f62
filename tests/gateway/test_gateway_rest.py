"""The REST side against a real Jupyter Kernel Gateway: kernelspecs, start, look up, delete,
and errors an agent can act on, each naming the gateway and never its token."""

from __future__ import annotations

import socket
from collections.abc import Iterator

import psutil
import pytest
from nb_mcp.actors.gateway_client import GatewayClient, GatewayError
from nb_mcp.actors.gateway_settings import GatewaySettings

from tests.gateway.support import RunningGateway, free_port
from tests.helpers import wait_for


def settings_for(env: dict[str, str]) -> GatewaySettings:
    settings = GatewaySettings.from_env(env)
    assert settings is not None
    return settings


@pytest.fixture
def client(kernel_gateway: RunningGateway) -> Iterator[GatewayClient]:
    running = GatewayClient(settings_for(kernel_gateway.env()))
    yield running
    running.close()


def test_the_gateways_kernelspecs_are_listed(client: GatewayClient) -> None:
    specs = client.kernelspecs()
    assert specs.default == "python3"
    assert "python3" in specs.names
    assert specs.specs["python3"]["spec"]["language"] == "python"


def test_a_started_kernel_is_found_then_gone_after_delete(
    client: GatewayClient, kernel_gateway: RunningGateway
) -> None:
    model = client.start_kernel("python3", {"KERNEL_USERNAME": "nb-test"})
    kernel_id = model["id"]
    assert client.kernel(kernel_id)["id"] == kernel_id
    process = wait_for(lambda: kernel_gateway.kernel_process(kernel_id), what="the kernel process")
    assert client.delete_kernel(kernel_id) is True
    assert client.kernel(kernel_id) is None  # 404: gone
    assert client.delete_kernel(kernel_id) is False
    wait_for(
        lambda: not process.is_running() or process.status() == psutil.STATUS_ZOMBIE,
        what="the deleted kernel's process to exit",
    )


def test_a_wrong_token_is_refused_naming_the_gateway_and_nothing_starts(
    kernel_gateway: RunningGateway,
) -> None:
    before = {p.pid for p in kernel_gateway.kernel_processes()}
    wrong = GatewayClient(settings_for(kernel_gateway.env(JUPYTER_GATEWAY_AUTH_TOKEN="wrong-tok")))
    with pytest.raises(GatewayError) as refused:
        wrong.start_kernel("python3", {})
    wrong.close()
    message = str(refused.value)
    assert refused.value.reason == "auth" and refused.value.status == 401
    assert kernel_gateway.url in message
    assert "JUPYTER_GATEWAY_AUTH_TOKEN is wrong" in message
    assert "wrong-tok" not in message and kernel_gateway.token not in message
    assert {p.pid for p in kernel_gateway.kernel_processes()} == before


def test_a_missing_token_says_none_is_set(kernel_gateway: RunningGateway) -> None:
    anonymous = GatewayClient(settings_for({"JUPYTER_GATEWAY_URL": kernel_gateway.url}))
    with pytest.raises(GatewayError, match="no JUPYTER_GATEWAY_AUTH_TOKEN is set") as refused:
        anonymous.kernelspecs()
    anonymous.close()
    assert refused.value.reason == "auth"


def test_an_unknown_kernelspec_lists_the_ones_the_gateway_has(client: GatewayClient) -> None:
    with pytest.raises(GatewayError) as unknown:
        client.start_kernel("julia-9", {})
    assert unknown.value.reason == "kernelspec"
    assert "no kernelspec named 'julia-9'" in str(unknown.value)
    assert "python3" in str(unknown.value) and "broken" in str(unknown.value)


def test_a_kernel_that_fails_on_the_gateway_is_its_5xx_with_the_cause(
    client: GatewayClient,
) -> None:
    with pytest.raises(GatewayError) as failed:
        client.start_kernel("broken", {})
    assert failed.value.reason == "gateway_error" and failed.value.status == 500
    assert "/nonexistent/python" in str(failed.value) or "FileNotFoundError" in str(failed.value)
    assert "Traceback" not in str(failed.value)


def test_a_gateway_that_is_not_running_is_unreachable_at_once() -> None:
    port = free_port()  # nothing listens there
    client = GatewayClient(settings_for({"JUPYTER_GATEWAY_URL": f"http://127.0.0.1:{port}"}))
    with pytest.raises(GatewayError) as refused:
        client.kernelspecs()
    client.close()
    assert refused.value.reason == "unreachable"
    assert f"http://127.0.0.1:{port}" in str(refused.value)


def test_a_gateway_that_never_answers_times_out_after_the_request_timeout() -> None:
    # A socket that listens but never accepts: the connection is made, no answer ever comes.
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        client = GatewayClient(
            settings_for({"JUPYTER_GATEWAY_URL": url, "JUPYTER_GATEWAY_REQUEST_TIMEOUT": "1"})
        )
        with pytest.raises(GatewayError) as late:
            client.kernelspecs()
        client.close()
    assert late.value.reason == "timeout"
    assert url in str(late.value) and "within 1s" in str(late.value)


def test_the_start_request_forwards_kernel_variables_and_nothing_else(
    client: GatewayClient, kernel_gateway: RunningGateway
) -> None:
    settings = settings_for(
        kernel_gateway.env(KERNEL_TEAM="ml", KERNEL_WORKING_DIR="/tmp", PRIVATE_KEY="xyz")
    )
    model = client.start_kernel("python3", settings.kernel_env)
    process = wait_for(
        lambda: kernel_gateway.kernel_process(model["id"]), what="the kernel process"
    )
    environ = process.environ()
    client.delete_kernel(model["id"])
    assert environ["KERNEL_TEAM"] == "ml"
    assert environ["KERNEL_USERNAME"] == "nb-test"
    assert environ["KERNEL_LAUNCH_TIMEOUT"] == "30"
    assert "PRIVATE_KEY" not in environ
    assert "JUPYTER_GATEWAY_AUTH_TOKEN" not in environ
