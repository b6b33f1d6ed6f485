"""Configuration: environment variables, the TOML file, and errors that name the key (SPEC 11)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import tiktok_gateway.config as config_module
from tiktok_gateway.config import PLACEHOLDER_PIXEL, available_cpus, cpu_quota, load_config
from tiktok_gateway.errors import ConfigError

SECRET = "tok-very-secret-123"


def test_environment_describes_one_tag() -> None:
    config = load_config(
        environ={
            "TIKTOK_PIXEL_CODE": "CABC",
            "TIKTOK_ACCESS_TOKEN": SECRET,
            "TIKTOK_PURCHASE_EVENT": "CompletePayment",
            "TIKTOK_CONTENT_TYPE": "product_group",
            "TIKTOK_TEST_EVENT_CODE": "TEST42",
            "TIKTOK_PHONE_REGION": "de",
            "TIKTOK_API_URL": "http://127.0.0.1:9999/",
            "GATEWAY_PORT": "9090",
            "GATEWAY_TRUSTED_PROXIES": "10.0.0.0/8, 127.0.0.1",
            "GATEWAY_BATCH_MAX_WAIT_MS": "250",
        }
    )
    (tag,) = config.tags
    assert not config.placeholder_pixel
    assert (tag.pixel_code, tag.purchase_event, tag.content_type) == (
        "CABC",
        "CompletePayment",
        "product_group",
    )
    assert (tag.test_event_code, tag.phone_region, tag.api_url) == (
        "TEST42",
        "DE",
        "http://127.0.0.1:9999",
    )
    assert tag.access_token is not None
    assert tag.access_token.get_secret_value() == SECRET
    assert tag.trigger.exclude_events == ("user_engagement",)
    assert config.gateway.port == 9090
    assert config.gateway.trusted_proxies == ("10.0.0.0/8", "127.0.0.1")
    assert config.gateway.batch_max_wait_ms == 250


def test_secret_never_prints() -> None:
    config = load_config(environ={"TIKTOK_PIXEL_CODE": "C1", "TIKTOK_ACCESS_TOKEN": SECRET})
    assert SECRET not in repr(config)
    assert SECRET not in str(config.tags[0])


def test_token_file(tmp_path: Path) -> None:
    token = tmp_path / "token"
    token.write_text(SECRET + "\n")
    config = load_config(
        environ={"TIKTOK_PIXEL_CODE": "C1", "TIKTOK_ACCESS_TOKEN_FILE": str(token)}
    )
    assert config.tags[0].access_token is not None
    assert config.tags[0].access_token.get_secret_value() == SECRET


def test_no_pixel_means_placeholder() -> None:
    config = load_config(environ={})
    assert config.placeholder_pixel
    assert config.tags[0].pixel_code == PLACEHOLDER_PIXEL
    assert config.gateway.resolved_queue_url == "sqlite:///data/queue.db"


@pytest.mark.parametrize(
    ("environ", "key"),
    [
        ({"TIKTOK_PURCHASE_EVENT": "Buy"}, "TIKTOK_PURCHASE_EVENT"),
        ({"TIKTOK_PHONE_REGION": "XX"}, "TIKTOK_PHONE_REGION"),
        ({"TIKTOK_PIXEL_CODE": "C 1;"}, "TIKTOK_PIXEL_CODE"),
        ({"GATEWAY_PORT": "http"}, "GATEWAY_PORT"),
        ({"TIKTOK_ACCESS_TOKEN_FILE": "/nonexistent/token"}, "TIKTOK_ACCESS_TOKEN_FILE"),
    ],
)
def test_invalid_values_name_the_key(environ: dict[str, str], key: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ=environ)
    assert caught.value.key == key


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("amqp://127.0.0.1:5672/", "unsupported queue 'amqp'"),
        ("memory://x", "unsupported queue 'memory'"),
        ("redis://:hunter2@127.0.0.1:6379/0?bogus=1", "unknown option 'bogus'"),
        ("redis://:hunter2@127.0.0.1:6379/0?socket_timeout=soon", "socket_timeout"),
        ("redis://127.0.0.1:6379/0?key_prefix=", "key_prefix must be non-empty"),
    ],
)
def test_a_bad_queue_url_is_refused_at_load_without_its_password(url: str, reason: str) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(environ={"GATEWAY_QUEUE_URL": url})
    assert caught.value.key == "GATEWAY_QUEUE_URL"
    assert reason in caught.value.reason
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize(
    "url",
    [
        "",
        "sqlite:///var/lib/gw/queue.db",
        "memory://",
        "redis://127.0.0.1:6379/0",
        "rediss://user:secret@redis.example.com:6380/2?socket_timeout=2&key_prefix=shop-a",
    ],
)
def test_good_queue_urls_load(url: str) -> None:
    assert load_config(environ={"GATEWAY_QUEUE_URL": url}).gateway.queue_url == url


def test_toml_file_with_several_tags(tmp_path: Path) -> None:
    path = tmp_path / "gateway.toml"
    path.write_text(
        """
[gateway]
port = 8181
allowed_origins = ["https://shop.example"]

[[tags]]
name = "shop"
pixel_code = "CSHOP"
access_token_env = "SHOP_TOKEN"
purchase_event = "Purchase"
[tags.trigger]
hostnames = ["shop.example"]
[tags.event_map]
scroll = "Scroll"

[[tags]]
name = "brand"
pixel_code = "CBRAND"
consent = "ignore"
"""
    )
    config = load_config(path, environ={"SHOP_TOKEN": SECRET, "GATEWAY_PORT": "8282"})
    shop, brand = config.tags
    assert config.gateway.port == 8282  # the environment wins over the file
    assert config.gateway.allowed_origins == ("https://shop.example",)
    assert shop.access_token is not None
    assert shop.access_token.get_secret_value() == SECRET
    assert shop.resolved_event_map["scroll"] == "Scroll"
    assert shop.resolved_event_map["purchase"] == "Purchase"
    assert shop.trigger.hostnames == ("shop.example",)
    assert (brand.consent, brand.access_token) == ("ignore", None)


@pytest.mark.parametrize(
    ("text", "key"),
    [
        ("[[tags]]\nname = 'a'\n", "tags[0].pixel_code"),
        ("[[tags]]\npixel_code = 'C1'\nconsent = 'maybe'\n", "tags[0].consent"),
        ("[[tags]]\npixel_code = 'C1'\nsurprise = 1\n", "tags[0].surprise"),
        ("[gateway]\nport = 0\n", "gateway.port"),
        (
            "[[tags]]\npixel_code = 'C1'\naccess_token_env = 'NOPE_UNSET'\n",
            "tags[0].access_token_env",
        ),
        ("[[tags]]\npixel_code='C1'\n[[tags]]\npixel_code='C2'\n", "tags.name"),
        ('[[tags]]\npixel_code = "C1"\nname = "shop\\u001f"\n', "tags[0].name"),
        ("not toml = = 1", "--config"),
    ],
)
def test_invalid_file_names_the_key(tmp_path: Path, text: str, key: str) -> None:
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(ConfigError) as caught:
        load_config(path, environ={})
    assert caught.value.key == key


def test_workers_is_a_number_or_auto(monkeypatch: pytest.MonkeyPatch) -> None:
    def workers(value: str) -> int | str:
        return load_config(None, {"GATEWAY_WORKERS": value}).gateway.workers

    assert load_config(None, {}).gateway.workers == 1  # the default: one process
    assert workers("4") == 4
    assert workers(" Auto ") == "auto"
    for bad in ("0", "-1", "1.5", "two", "1025"):
        with pytest.raises(ConfigError) as caught:
            load_config(None, {"GATEWAY_WORKERS": bad})
        assert caught.value.key == "GATEWAY_WORKERS"
    assert available_cpus() >= 1
    monkeypatch.setattr(config_module, "available_cpus", lambda: 3)  # auto is wired to it
    assert load_config(None, {"GATEWAY_WORKERS": "auto"}).gateway.resolved_workers == 3


def test_worker_timeout_is_bounded(tmp_path: Path) -> None:
    def timeout(value: str) -> float:
        environ = {"GATEWAY_WORKER_TIMEOUT_SECONDS": value}
        return load_config(None, environ).gateway.worker_timeout_seconds

    assert load_config(None, {}).gateway.worker_timeout_seconds == 30
    assert (timeout("2"), timeout("12.5"), timeout("3600")) == (2, 12.5, 3600)
    for bad in ("0", "1.9", "-5", "3601", "nan", "inf", "soon"):
        with pytest.raises(ConfigError) as caught:
            load_config(None, {"GATEWAY_WORKER_TIMEOUT_SECONDS": bad})
        assert caught.value.key == "GATEWAY_WORKER_TIMEOUT_SECONDS", bad
    path = tmp_path / "gateway.toml"
    path.write_text("[gateway]\nworker_timeout_seconds = 1\n")
    with pytest.raises(ConfigError) as caught:
        load_config(path, {})
    assert caught.value.key == "gateway.worker_timeout_seconds"
    assert "greater than or equal to 2" in caught.value.reason


def _cgroups(tmp_path: Path, membership: str, files: dict[str, str]) -> tuple[Path, Path]:
    root = tmp_path / "cgroup"
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(text)
    (tmp_path / "self").write_text(membership)
    return root, tmp_path / "self"


def test_auto_counts_a_cpu_quota_as_well_as_the_affinity_mask(tmp_path: Path) -> None:
    """docker run --cpus, a Kubernetes CPU limit, systemd's CPUQuota: a CFS quota, which the
    affinity mask does not show."""
    v2 = _cgroups(
        tmp_path / "v2", "0::/\n", {"cgroup.controllers": "cpu", "cpu.max": "150000 100000\n"}
    )
    assert cpu_quota(*v2) == 1.5
    assert available_cpus(*v2) == min(2, len(os.sched_getaffinity(0)))
    nested = _cgroups(
        tmp_path / "nested",
        "0::/system.slice/gw.service\n",
        {
            "cgroup.controllers": "cpu",
            "system.slice/cpu.max": "100000 100000",
            "system.slice/gw.service/cpu.max": "max 100000",
        },
    )
    assert cpu_quota(*nested) == 1.0  # the parent's limit holds for its children
    assert available_cpus(*nested) == 1
    v1 = _cgroups(
        tmp_path / "v1",
        "4:memory:/x\n2:cpu,cpuacct:/docker/abc\n0::/\n",
        {
            "cpu,cpuacct/docker/abc/cpu.cfs_quota_us": "300000",
            "cpu,cpuacct/docker/abc/cpu.cfs_period_us": "100000",
        },
    )
    assert cpu_quota(*v1) == 3.0
    unlimited = _cgroups(
        tmp_path / "none", "0::/\n", {"cgroup.controllers": "", "cpu.max": "max 100000"}
    )
    assert cpu_quota(*unlimited) is None
    assert available_cpus(*unlimited) == len(os.sched_getaffinity(0))
    assert cpu_quota(tmp_path / "missing", tmp_path / "missing") is None


def test_the_readme_documents_every_environment_variable() -> None:
    """README's configuration table names each ``TIKTOK_*`` and ``GATEWAY_*`` variable the
    settings read (``TIKTOK_LIMITED_DATA_USE`` was read and not listed)."""
    readme = (Path(__file__).parents[1] / "README.md").read_text(encoding="utf-8")
    models = (
        (config_module.EnvTagSettings, "TIKTOK_"),
        (config_module.GatewaySettings, "GATEWAY_"),
    )
    variables = [prefix + name.upper() for model, prefix in models for name in model.model_fields]
    assert len(variables) > 30
    assert [key for key in variables if f"`{key}`" not in readme] == []
