"""The deployment files in ``deploy/`` agree with the code (issue 13, item 5).

- A wheel built from the repository as ``deploy/Dockerfile`` builds it (the hot path compiled with
  mypyc, in a build environment of its own) and installed into a fresh venv serves a hit; the
  image's ``HEALTHCHECK`` command and the Kubernetes probes succeed against it; it runs with
  write+execute memory refused (the unit's ``MemoryDenyWriteExecute``); behind ``deploy/Caddyfile``
  it takes the visitor's address from the proxy, never a forged one.
- The systemd unit passes ``systemd-analyze verify`` without a single warning.
- Every variable that ``compose.yaml``, the manifests, the unit, the Dockerfile and
  ``gateway.env.example`` set is one the configuration reads, and together they load.
- The Dockerfile's port, volume and health check agree with the defaults; every supervisor's
  grace period covers the gateway's graceful stop.

No image is built here (no Docker daemon, no registry to pull a base image from).
"""

from __future__ import annotations

import ipaddress
import json
import os
import re
import shlex
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml  # type: ignore[import-untyped]  # PyYAML ships no type hints

from tests.system.processes import free_port, wait_until_up
from tiktok_gateway.cli.serve import SAMPLE_HIT
from tiktok_gateway.config import EnvTagSettings, GatewaySettings, load_config
from tiktok_gateway.sources.request_context import parse_trusted_proxies
from tiktok_gateway.tags.ga4.settings import GA4Settings

ROOT = Path(__file__).resolve().parents[1]
DEPLOY = ROOT / "deploy"
KUBERNETES = DEPLOY / "kubernetes"
DEFAULTS = GatewaySettings()

# Read by telemetry.logs.configure_from_environment rather than by GatewaySettings.
LOG_VARIABLES = {"GATEWAY_LOG_FORMAT", "GATEWAY_LOG_LEVEL"}
KNOWN_VARIABLES = (
    {f"GATEWAY_{name.upper()}" for name in GatewaySettings.model_fields}
    | {f"GATEWAY_GA4_{name.upper()}" for name in GA4Settings.model_fields}
    | {f"TIKTOK_{name.upper()}" for name in EnvTagSettings.model_fields}
    | LOG_VARIABLES
)


# --- reading the files ---------------------------------------------------------------------------


@dataclass
class Stage:
    """One ``FROM`` stage of a Dockerfile: its instructions (continuations joined) by keyword."""

    instructions: list[tuple[str, str]] = field(default_factory=list)

    def all(self, keyword: str) -> list[str]:
        return [arguments for name, arguments in self.instructions if name == keyword]

    def one(self, keyword: str) -> str:
        (arguments,) = self.all(keyword)
        return arguments

    def env(self) -> dict[str, str]:
        values: dict[str, str] = {}
        for arguments in self.all("ENV"):
            for word in shlex.split(arguments):
                name, _, value = word.partition("=")
                values[name] = value
        return values


def dockerfile_stages() -> list[Stage]:
    stages: list[Stage] = []
    logical = ""
    for line in (DEPLOY / "Dockerfile").read_text().splitlines():
        if line.lstrip().startswith("#") or not line.strip():
            continue
        logical += line.rstrip().removesuffix("\\").strip() + " "
        if line.rstrip().endswith("\\"):
            continue
        keyword, _, arguments = logical.strip().partition(" ")
        logical = ""
        if keyword.upper() == "FROM":
            stages.append(Stage())
        elif stages:
            stages[-1].instructions.append((keyword.upper(), arguments.strip()))
    return stages


def runtime_stage() -> Stage:
    return dockerfile_stages()[-1]


def healthcheck_command() -> list[str]:
    """The final stage's ``HEALTHCHECK ... CMD [...]`` (exec form, as JSON)."""
    arguments = runtime_stage().one("HEALTHCHECK")
    command: list[str] = json.loads(arguments.split(" CMD ", 1)[1])
    return command


def compose() -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((DEPLOY / "compose.yaml").read_text())
    return document


def manifests() -> list[dict[str, Any]]:
    return [
        document
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document
    ]


def gateway_deployments() -> list[dict[str, Any]]:
    return [
        document
        for document in manifests()
        if document["kind"] == "Deployment" and document["metadata"]["name"] == "tiktok-gateway"
    ]


def gateway_container(deployment: dict[str, Any]) -> dict[str, Any]:
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    result: dict[str, Any] = container
    return result


def env_file_variables() -> dict[str, str]:
    """``gateway.env.example``'s variables, the commented-out examples included."""
    pattern = re.compile(r"#?\s*([A-Z][A-Z0-9_]*)=(.*)")
    return {
        match[1]: match[2].strip()
        for line in (DEPLOY / "gateway.env.example").read_text().splitlines()
        if (match := pattern.fullmatch(line.strip()))
    }


def systemd_environment() -> dict[str, str]:
    unit = (DEPLOY / "tiktok-gateway.service").read_text()
    return dict(
        line.removeprefix("Environment=").partition("=")[::2]
        for line in unit.splitlines()
        if line.startswith("Environment=")
    )


def unit_setting(name: str) -> str:
    unit = (DEPLOY / "tiktok-gateway.service").read_text()
    (value,) = re.findall(rf"^{name}=(.*)$", unit, flags=re.MULTILINE)
    return str(value)


def seconds(text: str) -> float:
    """``30``, ``30s`` (compose, systemd) as seconds."""
    return float(str(text).removesuffix("s"))


# --- the wheel, installed as the image installs it -----------------------------------------------


@dataclass
class Installed:
    venv: Path
    wheel: Path

    @property
    def python(self) -> Path:
        return self.venv / "bin" / "python"

    @property
    def command(self) -> Path:
        return self.venv / "bin" / "tiktok-gateway"


def _run(args: list[str | Path], cwd: Path | None = None, **env: str) -> None:
    result = subprocess.run(
        [str(arg) for arg in args],
        cwd=cwd,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert result.returncode == 0, f"{args} failed:\n{result.stdout[-3000:]}{result.stderr[-3000:]}"


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> Installed:
    """The steps of deploy/Dockerfile's build stage on this machine: a build venv with the
    project's dependencies and mypy, the wheel compiled from a clean copy of the sources (no
    in-place ``.so``, no caches), then a fresh venv with only that wheel (and what it depends on)
    installed. pip reads this machine's package index configuration, as ``make install`` does."""
    if shutil.which("cc") is None and shutil.which("gcc") is None:
        pytest.skip("no C compiler: the image's build stage installs gcc; this machine has none")
    tmp = tmp_path_factory.mktemp("wheel")
    source = tmp / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(ROOT / name, source / name)
    shutil.copytree(
        ROOT / "src",
        source / "src",
        ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"),
    )
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    build = tmp / "build"
    _run([sys.executable, "-m", "venv", build])
    pip: list[str | Path] = [build / "bin" / "python", "-m", "pip", "install", "--quiet"]
    _run([*pip, *project["dependencies"], "mypy>=1.10", "setuptools>=68", "wheel"])
    wheels = tmp / "wheels"
    wheel_command: list[str | Path] = [
        "wheel",
        "--quiet",
        "--no-deps",
        "--no-build-isolation",
        "--wheel-dir",
        wheels,
    ]
    _run(
        [build / "bin" / "python", "-m", "pip", *wheel_command, "."],
        cwd=source,
        TIKTOK_GATEWAY_COMPILE="1",
    )
    (wheel,) = wheels.glob("tiktok_gateway-*.whl")
    venv = tmp / "venv"
    _run([sys.executable, "-m", "venv", venv])
    _run([venv / "bin" / "python", "-m", "pip", "install", "--quiet", wheel])
    return Installed(venv, wheel)


@dataclass
class Served:
    public: str
    admin: str
    process: subprocess.Popen[bytes]
    env: dict[str, str]
    data: Path


# Runs a command with the kernel's memory-deny-write-execute on (Linux 6.3+, inherited across
# exec): what MemoryDenyWriteExecute=yes asks of the process (systemd enforces it with seccomp).
MDWE_WRAPPER = """
import ctypes, os, sys
libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(65, 1, 0, 0, 0) != 0:  # PR_SET_MDWE, PR_MDWE_REFUSE_EXEC_GAIN
    sys.exit(77)
os.execv(sys.argv[1], sys.argv[1:])
"""


@contextmanager
def serving(
    installed: Installed,
    tmp_path: Path,
    prefix: tuple[str, ...] = (),
    settings: dict[str, str] | None = None,
) -> Iterator[Served]:
    """The installed ``tiktok-gateway serve`` (after ``prefix``), run from outside the repository,
    with the environment the image sets (public listener on every interface, data in a folder of
    its own) and ``settings``, and nothing of this process's GATEWAY_/TIKTOK_ settings; TikTok and
    GA4 go to the built-in sandbox."""
    port, admin_port = free_port(), free_port()
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith(("TIKTOK_", "GATEWAY_", "PYTHON"))
    }
    env |= runtime_stage().env()
    env |= {
        "PATH": f"{installed.venv / 'bin'}:{env.get('PATH', '')}",
        "GATEWAY_PORT": str(port),
        "GATEWAY_ADMIN_PORT": str(admin_port),
        "GATEWAY_DATA_DIR": str(tmp_path / "data"),
        "GATEWAY_GA4_ENDPOINT": "sandbox",
        "GATEWAY_BATCH_MAX_WAIT_MS": "20",
    }
    env |= settings or {}
    (tmp_path / "data").mkdir(parents=True)
    with (tmp_path / "serve.log").open("wb") as log:
        process = subprocess.Popen(
            [*prefix, str(installed.command), "serve"],
            cwd=tmp_path,
            env=env,
            stdout=log,
            stderr=log,
        )
    try:
        try:
            wait_until_up(f"http://127.0.0.1:{port}/healthz", process)
        except RuntimeError:
            if process.returncode == 77:
                pytest.skip("this kernel has no PR_SET_MDWE (Linux 6.3+)")
            raise
        public, admin = f"http://127.0.0.1:{port}", f"http://127.0.0.1:{admin_port}"
        yield Served(public, admin, process, env, tmp_path / "data")
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)


@pytest.fixture
def served(installed: Installed, tmp_path: Path) -> Iterator[Served]:
    with serving(installed, tmp_path) as running:
        yield running


def delivered(served: Served) -> list[dict[str, Any]]:
    """The TikTok events the built-in sandbox accepted, once it has some (5 s at most)."""
    for _ in range(50):
        listing = httpx.get(f"{served.admin}/sandbox/events", timeout=5).json()
        if events := [stored["event"] for stored in listing["events"]]:
            return events
        time.sleep(0.1)
    return []


def delivered_events(served: Served) -> list[str]:
    return [event["event"] for event in delivered(served)]


def test_the_installed_wheel_runs_the_compiled_hot_path(installed: Installed) -> None:
    where = subprocess.run(
        [installed.python, "-c", "import tiktok_gateway.event_data as m; print(m.__file__)"],
        cwd=installed.venv,
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert where.startswith(str(installed.venv))  # the wheel's copy, not the repository's
    assert where.endswith(".so")


def test_the_installed_wheel_serves_a_hit(served: Served) -> None:
    answer = httpx.post(f"{served.public}/g/collect?{SAMPLE_HIT}", timeout=10)
    assert answer.status_code == 204
    assert delivered_events(served) == ["PlaceAnOrder"]
    assert served.process.poll() is None


def test_it_runs_with_memory_deny_write_execute(installed: Installed, tmp_path: Path) -> None:
    """The systemd unit sets MemoryDenyWriteExecute=yes: nothing in the gateway (compiled) or
    its dependencies may need writable and executable memory, on the request or delivery path."""
    assert "\nMemoryDenyWriteExecute=yes\n" in (DEPLOY / "tiktok-gateway.service").read_text()
    with serving(installed, tmp_path, (sys.executable, "-c", MDWE_WRAPPER)) as running:
        answer = httpx.post(f"{running.public}/g/collect?{SAMPLE_HIT}", timeout=10)
        assert answer.status_code == 204
        assert delivered_events(running) == ["PlaceAnOrder"]
        ga4 = httpx.get(f"{running.admin}/sandbox/ga4/hits", timeout=5).json()
        for _ in range(50):
            if ga4["hits"]:
                break
            time.sleep(0.1)
            ga4 = httpx.get(f"{running.admin}/sandbox/ga4/hits", timeout=5).json()
        assert len(ga4["hits"]) == 1  # the GA4 forward went out over the network too
        assert running.process.poll() is None


def test_the_health_checks_and_probes_answer_and_stop_gracefully(
    installed: Installed, served: Served
) -> None:
    check = [str(installed.python if word == "python" else word) for word in healthcheck_command()]
    assert subprocess.run(check, env=served.env, timeout=10, check=False).returncode == 0
    for deployment in gateway_deployments():
        container = gateway_container(deployment)
        for probe in ("readinessProbe", "livenessProbe"):
            path = container[probe]["httpGet"]["path"]
            assert httpx.get(f"{served.public}{path}", timeout=5).status_code == 200, path

    # The image's STOPSIGNAL. uvicorn stops gracefully, then raises the signal again, so the
    # exit status is the signal's; the proof of a graceful stop is the queue closed cleanly:
    # SQLite folds its write-ahead log into the database and deletes it when the last connection
    # closes (a killed process leaves it behind).
    wal = served.data / "queue.db-wal"
    assert wal.exists()
    served.process.send_signal(signal.SIGTERM)
    status = served.process.wait(timeout=DEFAULTS.shutdown_seconds * 2 + 5)
    assert status in (0, -signal.SIGTERM)
    assert not wal.exists()
    stopped = subprocess.run(check, env=served.env, timeout=10, capture_output=True, check=False)
    assert stopped.returncode != 0  # the check does fail when nothing answers


# --- Caddy in front -------------------------------------------------------------------------------


def test_behind_the_caddyfile_the_gateway_sees_the_visitor_and_not_a_forged_address(
    installed: Installed, tmp_path: Path
) -> None:
    """deploy/Caddyfile in front of the installed gateway, as compose.yaml runs them: TLS (here
    Caddy's internal certificate for an IP address), and the gateway trusting the proxy's address
    alone. A visitor on 127.0.0.2 who writes its own X-Forwarded-For reaches TikTok as 127.0.0.2:
    Caddy replaced the header; the gateway believed Caddy (127.0.0.1) and nobody else."""
    if shutil.which("caddy") is None:
        pytest.skip("caddy is not installed (Debian: apt-get install caddy)")
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    target = f"reverse_proxy gateway:{DEFAULTS.port}"
    assert target in caddyfile
    https_port, http_port = free_port(), free_port()
    settings = {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_TRUSTED_PROXIES": "127.0.0.1/32"}
    with serving(installed, tmp_path / "gateway", settings=settings) as gateway:
        # Global options for a test run: no admin endpoint, free ports, the internal CA kept
        # out of this machine's trust store. The site block is the file's own.
        test_file = tmp_path / "Caddyfile"
        test_file.write_text(
            f"{{\n\tadmin off\n\tskip_install_trust\n\thttp_port {http_port}\n"
            f"\thttps_port {https_port}\n}}\n\n"
            + caddyfile.replace(target, f"reverse_proxy {gateway.public.removeprefix('http://')}")
        )
        home = tmp_path / "caddy-home"
        env = {
            "PATH": os.environ.get("PATH", ""),
            "HOME": str(home),
            "XDG_DATA_HOME": str(home / "data"),
            "XDG_CONFIG_HOME": str(home / "config"),
            "SITE_DOMAIN": "127.0.0.1",
        }
        with (tmp_path / "caddy.log").open("wb") as log:
            caddy = subprocess.Popen(
                ["caddy", "run", "--adapter", "caddyfile", "--config", str(test_file)],
                env=env,
                stdout=log,
                stderr=log,
            )
        try:
            transport = httpx.HTTPTransport(local_address="127.0.0.2", verify=False)
            with httpx.Client(transport=transport, timeout=10) as client:
                url = f"https://127.0.0.1:{https_port}"
                for _ in range(100):
                    try:
                        client.get(f"{url}/healthz")
                        break
                    except httpx.TransportError:
                        assert caddy.poll() is None, (tmp_path / "caddy.log").read_text()
                        time.sleep(0.1)
                answer = client.post(
                    f"{url}/g/collect?{SAMPLE_HIT}", headers={"X-Forwarded-For": "203.0.113.9"}
                )
            assert answer.status_code == 204
            (event,) = delivered(gateway)
            assert event["user"]["ip"] == "127.0.0.2"
        finally:
            caddy.terminate()
            caddy.wait(timeout=10)


# --- systemd -------------------------------------------------------------------------------------


def test_the_systemd_unit_verifies_without_a_warning(installed: Installed, tmp_path: Path) -> None:
    """``systemd-analyze verify`` exits 0 even for unknown keys and bad values (it only warns),
    so any output fails the test. It checks that ExecStart's program exists: the unit is verified
    with the installed wheel's command in place of /opt/tiktok-gateway's."""
    if shutil.which("systemd-analyze") is None:
        pytest.skip("systemd-analyze is not installed (Debian: apt-get install systemd)")
    unit = (DEPLOY / "tiktok-gateway.service").read_text()
    program = "/opt/tiktok-gateway/bin/tiktok-gateway"
    assert f"ExecStart={program} serve" in unit
    copy = tmp_path / "tiktok-gateway.service"
    copy.write_text(unit.replace(program, str(installed.command)))
    result = subprocess.run(
        ["systemd-analyze", "verify", str(copy)],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout + result.stderr) == (0, "")


# --- the variables --------------------------------------------------------------------------------


def _compose_gateway_environment() -> dict[str, str]:
    service = compose()["services"]["gateway"]
    environment = service["environment"]
    if isinstance(environment, list):
        environment = dict(item.partition("=")[::2] for item in environment)
    assert service["env_file"] in ("gateway.env", ["gateway.env"])  # gateway.env.example's copy
    return {name: str(value) for name, value in environment.items()}


def _deployment_environments() -> list[dict[str, str]]:
    environments = []
    for deployment in gateway_deployments():
        container = gateway_container(deployment)
        assert container["envFrom"] == [{"secretRef": {"name": "tiktok-gateway"}}]
        environments.append({item["name"]: item["value"] for item in container["env"]})
    return environments


def test_every_variable_the_deployment_files_set_is_read_by_the_configuration() -> None:
    sources = {
        "compose.yaml": _compose_gateway_environment(),
        "gateway.env.example": env_file_variables(),
        "tiktok-gateway.service": systemd_environment(),
        "Dockerfile": {
            name: value
            for name, value in runtime_stage().env().items()
            if name.startswith(("GATEWAY_", "TIKTOK_"))
        },
    }
    for n, environment in enumerate(_deployment_environments()):
        sources[f"deployment {n}"] = environment
    assert len(sources) == 6  # both Deployments found
    for source, environment in sources.items():
        assert environment, source
        unknown = sorted(set(environment) - KNOWN_VARIABLES)
        assert not unknown, f"{source} sets variables the gateway does not read: {unknown}"


def test_the_deployment_files_make_a_valid_configuration() -> None:
    """Each way to run it, with the image's environment where it runs the image, loads."""
    image = runtime_stage().env()
    example = {name: value for name, value in env_file_variables().items() if value}
    for environment in (
        image | example | _compose_gateway_environment(),
        example | systemd_environment(),
        *(image | example | env for env in _deployment_environments()),
    ):
        config = load_config(None, environment)
        parse_trusted_proxies(config.gateway.trusted_proxies)
        if "GATEWAY_QUEUE_URL" in environment:
            assert config.gateway.resolved_queue_url.startswith("redis://")


def test_compose_trusts_its_proxy_and_only_its_proxy() -> None:
    services = compose()["services"]
    proxy = ipaddress.ip_address(services["caddy"]["networks"]["gateway-net"]["ipv4_address"])
    trusted = parse_trusted_proxies(
        _compose_gateway_environment()["GATEWAY_TRUSTED_PROXIES"].split(",")
    )
    assert [proxy in network for network in trusted] == [True]
    assert all(network.num_addresses == 1 for network in trusted)
    caddyfile = (DEPLOY / "Caddyfile").read_text()
    assert f"reverse_proxy gateway:{DEFAULTS.port}" in caddyfile
    assert "ports" not in services["gateway"]  # reached through the proxy alone
    assert "ports" not in services["redis"]


def test_redis_is_configured_durable_wherever_it_is_started() -> None:
    commands = [compose()["services"]["redis"]["command"]]
    commands += [
        document["spec"]["template"]["spec"]["containers"][0]["args"]
        for document in manifests()
        if document["kind"] == "StatefulSet"
    ]
    assert len(commands) == 2
    for command in commands:
        text = " ".join(command)
        assert "--appendonly yes" in text
        assert "--appendfsync always" in text
        assert "--maxmemory-policy noeviction" in text


# --- the Dockerfile and the supervisors -----------------------------------------------------------


def test_the_dockerfile_agrees_with_the_defaults() -> None:
    stage = runtime_stage()
    env = stage.env()
    config = load_config(None, env)
    assert stage.one("EXPOSE") == str(config.gateway.port) == str(DEFAULTS.port)
    assert json.loads(stage.one("VOLUME")) == [env["GATEWAY_DATA_DIR"]]
    assert str(config.gateway.data_dir) == env["GATEWAY_DATA_DIR"]
    assert config.gateway.resolved_queue_url.startswith(f"sqlite:///{env['GATEWAY_DATA_DIR']}/")
    # The public listener on every interface; the admin one stays on the container's loopback.
    assert config.gateway.host == "0.0.0.0"
    assert config.gateway.admin_host == DEFAULTS.admin_host == "127.0.0.1"
    check = " ".join(healthcheck_command())
    assert "/healthz" in check
    assert f"'GATEWAY_PORT', '{DEFAULTS.port}'" in check
    assert stage.one("USER").split(":")[0] not in ("root", "0")
    assert json.loads(stage.one("CMD")) == ["tiktok-gateway", "serve"]  # exec form: PID 1
    assert stage.one("STOPSIGNAL") == "SIGTERM"
    builder = dockerfile_stages()[0]
    assert any("TIKTOK_GATEWAY_COMPILE=1" in command for command in builder.all("RUN"))


def test_every_supervisor_waits_longer_than_the_graceful_stop() -> None:
    """uvicorn waits up to shutdown_seconds + 1 for open requests, then the delivery worker up
    to shutdown_seconds for its requests in flight; Kubernetes' preStop pause comes first."""
    stop = 2 * DEFAULTS.shutdown_seconds + 1
    assert seconds(unit_setting("TimeoutStopSec")) > stop
    assert seconds(compose()["services"]["gateway"]["stop_grace_period"]) > stop
    for deployment in gateway_deployments():
        pod = deployment["spec"]["template"]["spec"]
        pause = float(pod["containers"][0]["lifecycle"]["preStop"]["exec"]["command"][-1])
        assert pod["terminationGracePeriodSeconds"] > stop + pause


def test_the_kubernetes_deployments_fit_their_queue() -> None:
    """SQLite: one pod, Recreate (never two processes on one file across a rollout), the volume
    at the data folder; Redis: no volume, rolling updates."""
    for deployment in gateway_deployments():
        spec = deployment["spec"]
        container = gateway_container(deployment)
        env = {item["name"]: item["value"] for item in container["env"]}
        assert container["ports"] == [{"name": "http", "containerPort": DEFAULTS.port}]
        assert container["readinessProbe"]["httpGet"]["path"] == "/readyz"
        assert container["livenessProbe"]["httpGet"]["path"] == "/healthz"
        if "GATEWAY_QUEUE_URL" in env:
            assert spec["strategy"]["type"] == "RollingUpdate"
            assert "volumes" not in spec["template"]["spec"] or all(
                "persistentVolumeClaim" not in volume
                for volume in spec["template"]["spec"]["volumes"]
            )
        else:
            assert (spec["replicas"], spec["strategy"]["type"]) == (1, "Recreate")
            mounts = {mount["mountPath"] for mount in container["volumeMounts"]}
            assert env["GATEWAY_DATA_DIR"] in mounts
