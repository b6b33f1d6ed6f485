"""Safe defaults of the configuration (SPEC 13): what would leave a surface open is an error."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from tiktok_gateway.cli import main
from tiktok_gateway.config import is_loopback_host, load_config
from tiktok_gateway.errors import ConfigError

TOKEN = "a-long-enough-admin-token"


@pytest.mark.parametrize(
    "value",
    [
        "G-SEC:topsecret",  # the typo of the issue: once read as "no secret"
        "G-SEC",
        "G-SEC=",
        "=topsecret",
        "G-A=one,G-B",
        "G-A=one;G-B=two",
        "G-A=with space",
    ],
)
def test_a_malformed_secret_list_is_a_configuration_error(value: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"GATEWAY_MP_API_SECRETS": value})
    assert info.value.key == "GATEWAY_MP_API_SECRETS"
    assert "topsecret" not in str(info.value)


def test_a_well_formed_secret_list_loads() -> None:
    config = load_config(
        None, {"GATEWAY_MP_API_SECRETS": " G-A = one , G-B=Xy_z-19aBcDeFgHiJkLmN ,"}
    )
    secrets = config.gateway.mp_api_secrets
    assert {mid: s.get_secret_value() for mid, s in secrets.items()} == {
        "G-A": "one",
        "G-B": "Xy_z-19aBcDeFgHiJkLmN",
    }


@pytest.mark.parametrize("token", ["1", "x" * 15])
def test_a_short_admin_token_is_refused(token: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"GATEWAY_ADMIN_TOKEN": token})
    assert info.value.key == "GATEWAY_ADMIN_TOKEN"
    assert "16" in str(info.value)
    assert load_config(None, {"GATEWAY_ADMIN_TOKEN": "x" * 16}).gateway.admin_token is not None


def test_the_admin_listener_defaults_to_loopback_on_the_next_port() -> None:
    gateway = load_config(None, {}).gateway
    assert (gateway.admin_host, gateway.resolved_admin_port) == ("127.0.0.1", 8081)
    assert load_config(None, {"GATEWAY_PORT": "9000"}).gateway.resolved_admin_port == 9001
    assert load_config(None, {"GATEWAY_PORT": "65535"}).gateway.resolved_admin_port == 1


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "admin.internal"])
def test_off_loopback_the_admin_listener_needs_a_token(host: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"GATEWAY_ADMIN_HOST": host})
    assert info.value.key == "GATEWAY_ADMIN_TOKEN"
    assert "GATEWAY_ADMIN_HOST" in str(info.value)
    config = load_config(None, {"GATEWAY_ADMIN_HOST": host, "GATEWAY_ADMIN_TOKEN": TOKEN})
    assert config.gateway.admin_host == host


def test_the_admin_listener_needs_a_port_of_its_own() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(None, {"GATEWAY_PORT": "9000", "GATEWAY_ADMIN_PORT": "9000"})
    assert info.value.key == "GATEWAY_ADMIN_PORT"


def test_admin_host_names_are_compared_in_lower_case() -> None:
    config = load_config(None, {"GATEWAY_ADMIN_HOSTNAMES": "Ops.Example.COM., gw.internal"})
    assert config.gateway.admin_hostnames == ("ops.example.com", "gw.internal")


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.9.9.9", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("0.0.0.0", False),
        ("::", False),
        ("192.168.1.2", False),
        ("localhost.evil.example", False),
    ],
)
def test_loopback_hosts(host: str, loopback: bool) -> None:
    assert is_loopback_host(host) is loopback


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"GATEWAY_MP_API_SECRETS": "G-SEC:topsecret"}, "GATEWAY_MP_API_SECRETS"),
        ({"GATEWAY_ADMIN_TOKEN": "1"}, "GATEWAY_ADMIN_TOKEN"),
        ({"GATEWAY_ADMIN_HOST": "0.0.0.0"}, "GATEWAY_ADMIN_TOKEN"),
    ],
)
@pytest.mark.parametrize("command", [["check"], ["serve"]])
def test_check_and_serve_stop_with_one_line_and_exit_2(
    environ: dict[str, str], key: str, command: list[str]
) -> None:
    result = CliRunner(env=environ).invoke(main, command)
    assert result.exit_code == 2, result.output
    [line] = result.output.strip().splitlines()
    assert key in line
    assert "topsecret" not in line
