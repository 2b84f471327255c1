"""docker-compose.yml and the Loki config, checked without Docker (none runs here).

The compose file is validated against the Compose specification's JSON schema (vendored in
tests/data, see its README), then checked for what the schema cannot see: pinned images, the
Collector image matching the built manifest, repo paths that exist, unique host ports,
required secrets that stop `docker compose up`, healthchecks that name real programs.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
LOKI = ROOT / "monitoring" / "loki" / "loki.yaml"
MANIFEST = ROOT / "collector" / "manifest.yaml"

# Variables that are secrets: each must be required (${VAR:?message}) wherever it is used.
# (The Telegram settings are files: compose secrets named by the two *_FILE variables.)
SECRETS = {
    "POSTGRES_PASSWORD",
    "GRAFANA_PG_PASSWORD",
    "GRAFANA_ADMIN_PASSWORD",
    "REST_SERVICE_TOKEN",
    "REDIS_PASSWORD",
    "TELEGRAM_BOT_TOKEN_FILE",
    "TELEGRAM_CHAT_ID_FILE",
}
# Host paths (outside the repo) a service may mount: the Collector reads every container's
# json-file log (collector/config.yaml, file_log/containers).
HOST_PATHS = {"collector": ("/var/lib/docker/containers",)}
VAR = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")


@pytest.fixture(scope="module")
def compose_text() -> str:
    return COMPOSE.read_text()


@pytest.fixture(scope="module")
def compose(compose_text: str) -> dict[str, Any]:
    return yaml.safe_load(compose_text)


@pytest.fixture(scope="module")
def services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return compose["services"]


def test_compose_file_matches_the_compose_schema(compose: dict[str, Any]) -> None:
    schema = json.loads(SCHEMA.read_text())
    validator = jsonschema.Draft201909Validator(schema)
    errors = sorted(validator.iter_errors(compose), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )


def test_schema_rejects_a_broken_file(compose: dict[str, Any]) -> None:
    """The schema check can fail: a misspelt key is reported."""
    broken = json.loads(json.dumps(compose))
    broken["services"]["collector"]["healtcheck"] = {"test": ["CMD", "true"]}
    schema = json.loads(SCHEMA.read_text())
    assert list(jsonschema.Draft201909Validator(schema).iter_errors(broken))


def test_the_stack_has_every_service(services: dict[str, dict[str, Any]]) -> None:
    wanted = {
        "postgres",
        "redis",
        "rest_service",
        "collector",
        "loki",
        "prometheus",
        "alertmanager",
        "grafana",
        "redis_exporter",
        "postgres_exporter",
        "demo",
    }
    assert wanted <= set(services), wanted - set(services)
    assert services["demo"].get("profiles") == ["demo"]
    assert "otel-assist" in services["demo"]["command"] and "demo" in services["demo"]["command"]
    rest = " ".join(services["rest_service"]["command"])
    assert "rest-service migrate &&" in rest and "rest-service serve --host 0.0.0.0" in rest


def test_every_image_is_pinned(services: dict[str, dict[str, Any]]) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        assert image, f"{name}: no image"
        if "build" in svc:
            continue  # our own image, built from the Dockerfile
        repo, _, tag = image.rpartition(":")
        assert repo and "/" not in tag, f"{name}: image {image!r} has no tag"
        assert tag != "latest" and re.search(r"\d+\.\d+", tag), f"{name}: {image!r} not pinned"


def test_collector_image_is_the_release_built_from_the_manifest(
    services: dict[str, dict[str, Any]],
) -> None:
    manifest = yaml.safe_load(MANIFEST.read_text())
    version = manifest["dist"]["version"]
    image = services["collector"]["image"]
    assert image == f"otel/opentelemetry-collector-contrib:{version}"
    # and every contrib module in the manifest is of that release
    contrib = [
        m["gomod"]
        for section in ("receivers", "processors", "exporters", "extensions")
        for m in manifest.get(section, [])
        if "opentelemetry-collector-contrib" in m["gomod"]
    ]
    assert contrib and all(m.endswith(f" v{version}") for m in contrib), contrib


def test_mounted_repo_paths_exist(services: dict[str, dict[str, Any]]) -> None:
    checked = 0
    for name, svc in services.items():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0] if isinstance(volume, str) else volume["source"]
            if source.startswith("/"):
                # A host path outside the repo: only the ones named here, read-only.
                assert source in HOST_PATHS.get(name, ()), f"{name}: mounts host path {source}"
                assert volume.endswith(":ro"), f"{name}: {volume} must be read-only"
            elif source.startswith("."):
                assert (ROOT / source).exists(), f"{name}: mounted path {source} is missing"
                checked += 1
        build = svc.get("build")
        if build:
            context = build if isinstance(build, str) else build.get("context", ".")
            assert (ROOT / context / "Dockerfile").exists()
    assert checked >= 8  # collector, loki, prometheus (2), alertmanager, grafana (3), postgres


def test_config_files_the_mounts_point_at(services: dict[str, dict[str, Any]]) -> None:
    """The files each program is told to read are inside what is mounted."""
    assert "--config=/etc/otelcol-contrib/config.yaml" in services["collector"]["command"]
    assert (
        "./collector/config.yaml:/etc/otelcol-contrib/config.yaml:ro"
        in (services["collector"]["volumes"])
    )
    assert "-config.file=/etc/loki/loki.yaml" in services["loki"]["command"]
    prom = services["prometheus"]["command"]
    assert "--web.enable-remote-write-receiver" in prom
    prom_cfg = yaml.safe_load((ROOT / "monitoring/prometheus/prometheus.yml").read_text())
    assert any(
        "collector:8888" in t
        for job in prom_cfg["scrape_configs"]
        for sc in job.get("static_configs", [])
        for t in sc["targets"]
    ), "Prometheus must scrape the Collector's own metrics"


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """What `docker compose` makes of ${VAR}, ${VAR:-default}, ${VAR:?message} with ``env``
    (required variables that are unset become "set" so the file can be read)."""
    env = env or {}

    def value(m: re.Match[str]) -> str:
        if m["name"] in env:
            return env[m["name"]]
        return m["arg"] if m["op"] in (":-", "-") else "set"

    return VAR.sub(value, text)


def published(services: dict[str, dict[str, Any]]) -> list[tuple[str, str, str]]:
    """(service, host address, host port) of every published port, variables at defaults."""
    out = []
    for name, svc in services.items():
        for port in svc.get("ports", []):
            parts = interpolate(str(port)).split(":")
            assert len(parts) == 3, f"{name}: {port!r} does not name the host address"
            out.append((name, parts[0], parts[1]))
    return out


def test_host_ports_are_unique(services: dict[str, dict[str, Any]]) -> None:
    seen: dict[str, str] = {}
    for name, _address, port in published(services):
        assert port not in seen, f"host port {port} used by {seen[port]} and {name}"
        seen[port] = name
    assert {"4318", "3000", "9090", "3100"} <= set(seen)


def test_no_port_is_published_on_all_interfaces_by_default(
    services: dict[str, dict[str, Any]],
) -> None:
    ports = published(services)
    assert ports and all(address == "127.0.0.1" for _name, address, _port in ports), ports
    # One variable opens the authenticated ways in; the unauthenticated ones never follow it.
    for name, svc in services.items():
        for port in svc.get("ports", []):
            if name in ("grafana", "rest_service"):
                assert str(port).startswith("${BIND_ADDRESS:-127.0.0.1}:"), port
            else:
                assert str(port).startswith("127.0.0.1:"), f"{name}: {port}"


def test_prometheus_has_no_lifecycle_endpoint(services: dict[str, dict[str, Any]]) -> None:
    assert "--web.enable-lifecycle" not in services["prometheus"]["command"]


def test_redis_requires_its_password_everywhere(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    redis = services["redis"]
    image_tag = redis["image"].split(":", 1)[1]
    major, minor, patch = (int(x) for x in image_tag.split("-")[0].split("."))
    assert (major, minor, patch) >= (8, 6, 3), "CVE-2026-23479 is fixed in 8.6.3"
    command = " ".join(redis["command"])
    assert '--requirepass "$$REDIS_PASSWORD"' in command, command
    assert "REDISCLI_AUTH" in " ".join(redis["healthcheck"]["test"])
    users = [
        n for n, s in services.items() if n not in ("redis",) and "redis" in s.get("depends_on", {})
    ]
    assert {"rest_service", "demo", "redis_exporter"} <= set(users)
    for name in users:
        env = services[name]["environment"]
        assert env.get("REDIS_PASSWORD", "").startswith("${REDIS_PASSWORD:?"), name
        assert "REDIS_URL" not in env, f"{name}: the URL is built from parts (docker/entrypoint.py)"


def test_no_password_is_pasted_into_a_url(compose_text: str) -> None:
    assert not re.search(r"://[^\s/]*\$\{[A-Z_]*PASSWORD", compose_text)
    env = dict.fromkeys(("POSTGRES_HOST", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"))
    rest_env = yaml.safe_load(compose_text)["services"]["rest_service"]["environment"]
    assert set(env) <= set(rest_env) and "DATABASE_URL" not in rest_env


def test_settings_the_plan_names(services: dict[str, dict[str, Any]]) -> None:
    """GRAFANA_URL for the admin, GRAFANA_ROOT_URL / GRAFANA_ADMIN_USER for Grafana,
    LOG_RETENTION_HOURS / METRICS_RETENTION_HOURS (default 48) for Loki and Prometheus."""
    rest = services["rest_service"]["environment"]
    assert rest["GRAFANA_URL"] == "${GRAFANA_ROOT_URL:-http://localhost:3000}"
    grafana = services["grafana"]["environment"]
    assert grafana["GF_SERVER_ROOT_URL"] == "${GRAFANA_ROOT_URL:-http://localhost:3000}"
    assert grafana["GF_SECURITY_ADMIN_USER"] == "${GRAFANA_ADMIN_USER:-admin}"
    prom = [interpolate(a) for a in services["prometheus"]["command"]]
    assert "--storage.tsdb.retention.time=48h" in prom
    assert "--storage.tsdb.retention.time=12h" in [
        interpolate(a, {"METRICS_RETENTION_HOURS": "12"}) for a in services["prometheus"]["command"]
    ]
    loki = services["loki"]
    assert "-config.expand-env=true" in loki["command"]
    assert loki["environment"]["LOG_RETENTION_HOURS"] == "${LOG_RETENTION_HOURS:-48}"
    am = [interpolate(a) for a in services["alertmanager"]["command"]]
    assert "--web.external-url=http://localhost:9093" in am


def test_secrets_are_required_never_defaulted(compose_text: str) -> None:
    uses = [m for m in VAR.finditer(compose_text) if m["name"] in SECRETS]
    assert {m["name"] for m in uses} == SECRETS
    for m in uses:
        assert m["op"] == ":?", f"{m.group(0)}: a secret must be ${{VAR:?message}}"
        assert len(m["arg"].strip()) > 10, f"{m.group(0)}: say what to set"
    # no secret written literally into the file
    assert not re.search(
        r"(?i)(password|token)\s*[:=]\s*['\"]?[A-Za-z0-9]{6,}['\"]?\s*$", compose_text, re.M
    )


def test_env_example_lists_every_secret_without_a_value() -> None:
    lines = (ROOT / ".env.example").read_text().splitlines()
    values = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("#"))
    assert set(values) >= SECRETS
    assert all(values[s] == "" for s in SECRETS)


def test_healthchecks_use_programs_the_images_have(services: dict[str, dict[str, Any]]) -> None:
    # Which probe each image can run (distroless/scratch images have none).
    allowed = {
        "postgres": "pg_isready",
        "redis": "redis-cli",
        "rest_service": "python",
        "prometheus": "wget",
        "alertmanager": "wget",
        "grafana": "wget",
        "postgres_exporter": "wget",
        "probe": "curl",
    }
    for name, svc in services.items():
        check = svc.get("healthcheck")
        if name in ("collector", "loki", "redis_exporter"):
            assert check is None, f"{name}: its image cannot run a healthcheck (see comment)"
            continue
        if name in ("demo", "collector_volume_init"):
            continue
        assert check, f"{name}: no healthcheck"
        test = check["test"]
        assert test[0] in ("CMD", "CMD-SHELL")
        assert allowed[name] in " ".join(test[1:]), f"{name}: {test}"
    probe = " ".join(services["probe"]["healthcheck"]["test"])
    assert "collector:13133" in probe and "loki:3100/ready" in probe


def test_named_volumes_are_declared(compose: dict[str, Any]) -> None:
    declared = set(compose.get("volumes", {}))
    used = set()
    for svc in compose["services"].values():
        for volume in svc.get("volumes", []):
            source = volume.split(":", 1)[0]
            if not source.startswith((".", "/")):
                used.add(source)
    assert used == declared
    assert {"collector_queue", "loki_data", "prometheus_data", "postgres_data"} <= used


def test_every_container_logs_where_the_collector_reads(
    compose: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    """Every service logs through json-file with the options the Collector's container-log
    rules read (docs/logs.md "Container logs"), and the Collector can read those files."""
    for name, svc in services.items():
        logging = svc.get("logging")
        assert logging, f"{name}: no logging options (its lines would carry no service name)"
        assert logging["driver"] == "json-file", name
        options = logging["options"]
        assert "com.docker.compose.service" in options["labels"].split(","), name
        assert "OTEL_LOGS_EXPORTER" in options["env"].split(","), name
        assert options["max-size"] and options["max-file"], f"{name}: logs never rotate"
    config = yaml.safe_load((ROOT / "collector" / "config.yaml").read_text())
    receiver = config["receivers"]["file_log/containers"]
    assert receiver["storage"] in config["service"]["extensions"]
    assert "file_log/containers" in config["service"]["pipelines"]["logs"]["receivers"]
    include = re.fullmatch(r"\$\{env:OTELCOL_CONTAINER_LOGS:-([^}]+)\}", receiver["include"][0])
    assert include and include.group(1).startswith("/var/lib/docker/containers/")
    collector = services["collector"]
    assert "/var/lib/docker/containers:/var/lib/docker/containers:ro" in collector["volumes"]
    assert collector["user"] == "0:0", "Docker's log files are root-only (0640 in 0710 dirs)"
    # The services that export their records over OTLP say so in the variable the
    # Collector's no-double-ingest rule reads.
    for name in ("rest_service", "demo"):
        assert services[name]["environment"]["OTEL_LOGS_EXPORTER"] == "otlp", name
    env = collector["environment"]["OTELCOL_DEPLOYMENT_ENVIRONMENT"]
    assert env == services["rest_service"]["environment"]["OTEL_ASSIST_ENVIRONMENT"]


def test_collector_queue_volume_is_where_the_config_persists(
    services: dict[str, dict[str, Any]],
) -> None:
    config = (ROOT / "collector" / "config.yaml").read_text()
    default_dir = re.search(r"\$\{env:OTELCOL_STORAGE_DIR:-([^}]+)\}", config)
    assert default_dir
    assert f"collector_queue:{default_dir.group(1)}" in services["collector"]["volumes"]


# --------------------------------------------------------------------------- Loki


@pytest.fixture(scope="module")
def loki() -> dict[str, Any]:
    return yaml.safe_load(LOKI.read_text())


def test_loki_uses_tsdb_and_schema_v13(loki: dict[str, Any]) -> None:
    configs = loki["schema_config"]["configs"]
    latest = max(configs, key=lambda c: str(c["from"]))
    assert latest["store"] == "tsdb"
    assert latest["schema"] == "v13"
    assert latest["index"]["period"] == "24h"
    assert "tsdb_shipper" in loki["storage_config"]
    assert "boltdb_shipper" not in loki["storage_config"]


def test_loki_keeps_logs_48h_through_the_compactor(loki: dict[str, Any]) -> None:
    """LOG_RETENTION_HOURS (default 48) expanded as Loki's -config.expand-env does."""
    assert loki["limits_config"]["retention_period"] == "${LOG_RETENTION_HOURS:-48}h"
    for env, want in (({}, "48h"), ({"LOG_RETENTION_HOURS": "72"}, "72h")):
        expanded = yaml.safe_load(interpolate(LOKI.read_text(), env))
        assert expanded["limits_config"]["retention_period"] == want
        assert expanded["limits_config"]["reject_old_samples_max_age"] == want
    compactor = loki["compactor"]
    assert compactor["retention_enabled"] is True
    assert compactor["delete_request_store"] == "filesystem"
    assert "table_manager" not in loki


def test_loki_accepts_otlp_with_structured_metadata(loki: dict[str, Any]) -> None:
    limits = loki["limits_config"]
    assert limits["allow_structured_metadata"] is True
    otlp = limits["otlp_config"]["resource_attributes"]
    assert otlp["ignore_defaults"] is True
    index = {
        a
        for c in otlp["attributes_config"]
        if c["action"] == "index_label"
        for a in c["attributes"]
    }
    # Loki index labels: service and environment only (docs/telemetry-contract.md).
    assert index == {"service.name", "deployment.environment.name"}
    metadata = {
        a
        for c in otlp["attributes_config"]
        if c["action"] == "structured_metadata"
        for a in c["attributes"]
    }
    assert "service.instance.id" in metadata
    for rule in limits["otlp_config"].get("log_attributes", []):
        assert rule["action"] != "index_label"  # Loki allows it only for resource attributes


def test_collector_environment_names_variables_the_config_reads(
    services: dict[str, dict[str, Any]],
) -> None:
    """A misspelt variable in compose would silently leave the default in place."""
    config = (ROOT / "collector" / "config.yaml").read_text()
    read = set(re.findall(r"\$\{env:([A-Z0-9_]+)(?::-[^}]*)?\}", config))
    assert {"LOKI_OTLP_ENDPOINT", "PROMETHEUS_REMOTE_WRITE_ENDPOINT", "OTELCOL_STORAGE_DIR"} <= read
    for name in re.findall(r"\$\{env:([A-Z0-9_]+)\}", config):
        pytest.fail(f"${{env:{name}}} has no default: the Collector would start half-configured")
    assert set(services["collector"]["environment"]) <= read


def test_every_compose_variable_is_documented_and_in_env_example(compose_text: str) -> None:
    compose_text = "\n".join(
        ln for ln in compose_text.splitlines() if not ln.lstrip().startswith("#")
    )
    used = {m["name"] for m in VAR.finditer(compose_text)}
    stack = (ROOT / "docs" / "stack.md").read_text()
    settings = stack[stack.index("## Settings") : stack.index("## Ports")]
    rows = set(re.findall(r"^\| `([A-Z_]+)` \|", settings, re.M))
    assert used == rows, f"docs/stack.md Settings: missing {used - rows}, stale {rows - used}"
    example = (ROOT / ".env.example").read_text()
    missing = sorted(n for n in used if not re.search(rf"^{n}=", example, re.M))
    assert not missing, f".env.example lacks {missing}"
    # documented defaults are the file's defaults
    for m in VAR.finditer(compose_text):
        if m["op"] == ":-":
            assert f"| `{m['name']}` | `{m['arg']}` |" in settings, m.group(0)
