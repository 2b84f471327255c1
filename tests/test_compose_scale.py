"""docker-compose.scale.yml and its configs, checked without Docker (none runs here).

- the override matches the Compose schema (tests/data/compose-spec.json), pins its images,
  mounts paths that exist, declares its volumes and requires its secrets;
- Loki's simple-scalable config and the VictoriaMetrics cluster flags carry what their
  documented configuration reference requires for that mode (checkers below; each one is
  also shown to fail on a broken variant);
- prometheus-scale.yml passes the real promtool;
- the Collector agent/gateway wiring in compose names what collector/agent.yaml and
  gateway.yaml read. (The binary's `validate` of both files runs in
  tests/collector/test_two_tier.py, next to the built Collector.)
"""

from __future__ import annotations

import copy
import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml

ROOT = Path(__file__).resolve().parent.parent
SCALE = ROOT / "docker-compose.scale.yml"
BASE = ROOT / "docker-compose.yml"
SCHEMA = Path(__file__).resolve().parent / "data" / "compose-spec.json"
LOKI = ROOT / "monitoring" / "loki" / "loki-scale.yaml"
PROMETHEUS = ROOT / "monitoring" / "prometheus" / "prometheus-scale.yml"
MANIFEST = ROOT / "collector" / "manifest.yaml"
VAR = re.compile(r"\$\{(?P<name>[A-Z_][A-Z0-9_]*)(?P<op>:?[-?+])?(?P<arg>[^}]*)\}")
SECRETS = {"MINIO_ROOT_USER", "MINIO_ROOT_PASSWORD"}
#: The Collector's confmap syntax: ${env:NAME:-default}
ENV_VAR = re.compile(r"\$\{env:(?P<name>[A-Z_][A-Z0-9_]*)(?::-(?P<arg>[^}]*))?\}")


class ComposeLoader(yaml.SafeLoader):
    """YAML with the Compose spec's ``!reset`` tag (clear the base file's value)."""


def _reset(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    if isinstance(node, yaml.MappingNode):
        return loader.construct_mapping(node)
    return None


ComposeLoader.add_constructor("!reset", _reset)


@pytest.fixture(scope="module")
def scale() -> dict[str, Any]:
    return yaml.load(SCALE.read_text(), Loader=ComposeLoader)


@pytest.fixture(scope="module")
def base() -> dict[str, Any]:
    return yaml.safe_load(BASE.read_text())


@pytest.fixture(scope="module")
def services(scale: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return scale["services"]


@pytest.fixture(scope="module")
def loki() -> dict[str, Any]:
    return yaml.safe_load(LOKI.read_text())


def _replicas(svc: dict[str, Any]) -> int:
    return int(svc.get("deploy", {}).get("replicas", 1))


# --------------------------------------------------------------------------- compose


def test_override_matches_the_compose_schema(scale: dict[str, Any]) -> None:
    validator = jsonschema.Draft201909Validator(json.loads(SCHEMA.read_text()))
    errors = sorted(validator.iter_errors(scale), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(
        f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in errors
    )
    broken = copy.deepcopy(scale)
    broken["services"]["vminsert"]["replica"] = 2  # misspelt key: the schema catches it
    assert list(validator.iter_errors(broken))


def test_new_images_are_pinned_and_the_gateway_is_the_built_release(
    services: dict[str, dict[str, Any]],
) -> None:
    for name, svc in services.items():
        image = svc.get("image")
        if image is None:
            continue  # an override of a base service that keeps the base image
        repo, _, tag = image.rpartition(":")
        assert repo and tag != "latest" and re.search(r"\d+\.\d+|\d{4}-\d{2}-\d{2}", tag), (
            f"{name}: {image!r} not pinned"
        )
    version = yaml.safe_load(MANIFEST.read_text())["dist"]["version"]
    assert services["otelcol-gateway"]["image"] == f"otel/opentelemetry-collector-contrib:{version}"


def test_mounted_paths_exist_and_volumes_are_declared(
    scale: dict[str, Any], base: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    declared = set(scale.get("volumes", {})) | set(base.get("volumes", {}))
    for name, svc in services.items():
        for mount in svc.get("volumes", []):
            source = mount.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name}: {source} does not exist"
            else:
                assert source in declared, f"{name}: volume {source} not declared"


def test_every_service_it_names_exists(
    base: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    known = set(base["services"]) | set(services)
    for name, svc in services.items():
        deps = svc.get("depends_on") or {}
        for dep in deps if isinstance(deps, list) else deps.keys():
            assert dep in known, f"{name} depends on unknown {dep}"


def test_secrets_are_required_never_defaulted() -> None:
    text = SCALE.read_text()
    for m in VAR.finditer(text):
        if m["name"] in SECRETS:
            assert m["op"] == ":?", f"{m.group(0)}: secrets must be ${{VAR:?message}}"
    assert {m["name"] for m in VAR.finditer(text)} >= SECRETS


def test_env_example_lists_every_variable_of_the_override() -> None:
    """`cp .env.example .env` must leave nothing for the scale-out stack to refuse on."""
    used = {m["name"] for m in VAR.finditer(SCALE.read_text())}
    example = (ROOT / ".env.example").read_text()
    missing = sorted(n for n in used if not re.search(rf"^{n}=", example, re.M))
    assert not missing, f".env.example lacks {missing}"


# --------------------------------------------------------------------------- Collector tiers


def _config_vars(path: Path) -> set[str]:
    return {m["name"] for m in ENV_VAR.finditer(path.read_text())}


def test_agent_and_gateway_wiring(services: dict[str, dict[str, Any]]) -> None:
    agent = services["collector"]
    assert agent["command"] == ["--config=/etc/otelcol-contrib/agent.yaml"]
    assert "./collector/agent.yaml:/etc/otelcol-contrib/agent.yaml:ro" in agent["volumes"]
    # the persistent queue's directory is the volume (agent.yaml's default path)
    agent_cfg = yaml.safe_load((ROOT / "collector" / "agent.yaml").read_text())
    storage = agent_cfg["extensions"]["file_storage/queue"]["directory"]
    match = ENV_VAR.fullmatch(storage)
    assert match is not None, storage
    default_dir = match["arg"]
    assert f"collector_queue:{default_dir}" in agent["volumes"]
    endpoint = agent["environment"]["OTELCOL_GATEWAY_ENDPOINT"]
    assert endpoint == "dns:///otelcol-gateway:4317", "gRPC must resolve every replica"
    assert set(agent["environment"]) <= _config_vars(ROOT / "collector" / "agent.yaml")
    gateway = services["otelcol-gateway"]
    assert _replicas(gateway) >= 2
    assert not [v for v in gateway.get("volumes", []) if not v.startswith("./")], (
        "the gateway is stateless: no volume"
    )
    assert set(gateway["environment"]) <= _config_vars(ROOT / "collector" / "gateway.yaml")
    assert gateway["environment"]["LOKI_OTLP_ENDPOINT"] == "http://loki-write:3100/otlp"


def test_agent_reads_container_logs_like_the_single_tier_collector(
    services: dict[str, dict[str, Any]],
) -> None:
    """The agent sits on the Docker host: it reads every container's log with the very
    receiver collector/config.yaml has (tests/collector/test_container_logs.py tests it)."""
    agent_cfg = yaml.safe_load((ROOT / "collector" / "agent.yaml").read_text())
    single = yaml.safe_load((ROOT / "collector" / "config.yaml").read_text())
    receiver = agent_cfg["receivers"]["file_log/containers"]
    assert receiver == single["receivers"]["file_log/containers"]
    assert "file_log/containers" in agent_cfg["service"]["pipelines"]["logs"]["receivers"]
    assert receiver["storage"] in agent_cfg["service"]["extensions"]
    # the override keeps the base file's read-only mount (compose merges volumes by target)
    assert not [v for v in services["collector"]["volumes"] if "/var/lib/docker" in v]


# --------------------------------------------------------------------------- Loki


def loki_problems(cfg: dict[str, Any], services: dict[str, dict[str, Any]]) -> list[str]:
    """What Loki's configuration reference requires for simple-scalable mode on S3-style
    object storage that ``cfg`` (loki-scale.yaml) and the compose services lack."""
    problems = []
    common = cfg.get("common", {})
    s3 = common.get("storage", {}).get("s3", {})
    for key in ("endpoint", "bucketnames", "access_key_id", "secret_access_key"):
        if not s3.get(key):
            problems.append(f"common.storage.s3.{key} missing")
    if s3.get("s3forcepathstyle") is not True:
        problems.append("common.storage.s3.s3forcepathstyle must be true for MinIO")
    if common.get("ring", {}).get("kvstore", {}).get("store") != "memberlist":
        problems.append("common.ring.kvstore.store must be memberlist (no Consul/etcd here)")
    for period in cfg.get("schema_config", {}).get("configs", []):
        if (period.get("store"), period.get("schema"), period.get("object_store")) != (
            "tsdb",
            "v13",
            "s3",
        ):
            problems.append(f"schema period {period.get('from')}: want tsdb, v13, s3")
        if period.get("index", {}).get("period") != "24h":
            problems.append("schema index period must be 24h (tsdb, retention)")
    if cfg.get("compactor", {}).get("delete_request_store") != "s3":
        problems.append("compactor.delete_request_store must be the shared object store")
    if cfg.get("ruler", {}).get("storage", {}).get("type") != "s3":
        problems.append("ruler.storage.type must be s3 (rules shared by backend replicas)")
    targets: dict[str, str] = {}
    for name, svc in services.items():
        command = " ".join(svc.get("command", []))
        m = re.search(r"-target=(\w+)", command)
        if m and "loki" in svc.get("image", ""):
            targets[m[1]] = name
            if "-config.expand-env=true" not in command:
                problems.append(f"{name}: -config.expand-env=true needed for ${{...}} in config")
            # variables the config reads without a default must be in the environment
            needed = {v["name"] for v in VAR.finditer(LOKI.read_text()) if v["op"] is None}
            for var in sorted(needed - set(svc.get("environment", {}))):
                problems.append(f"{name}: config reads ${{{var}}} but it is not set")
    if set(targets) != {"read", "write", "backend"}:
        problems.append(f"targets {sorted(targets)}: want read, write, backend")
        return problems
    joined = {m.split(":")[0] for m in cfg.get("memberlist", {}).get("join_members", [])}
    if not set(targets.values()) <= joined:
        problems.append(f"memberlist.join_members {sorted(joined)} misses a target's service")
    if common.get("compactor_address") != f"http://{targets['backend']}:3100":
        problems.append("common.compactor_address must point at the backend target")
    rf = int(common.get("replication_factor", 3))
    writers = _replicas(services[targets["write"]])
    if rf > writers:
        problems.append(f"replication_factor {rf} > {writers} write replicas: writes fail")
    if rf < 3:
        problems.append("replication_factor < 3: losing one write replica loses data")
    return problems


def test_loki_simple_scalable_config(
    loki: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    assert loki_problems(loki, services) == []


def test_loki_checker_fails_on_broken_configs(
    loki: dict[str, Any], services: dict[str, dict[str, Any]]
) -> None:
    few_writers = copy.deepcopy(services)
    few_writers["loki-write"]["deploy"]["replicas"] = 1
    assert any("write replicas" in p for p in loki_problems(loki, few_writers))
    filesystem = copy.deepcopy(loki)
    filesystem["schema_config"]["configs"][0]["object_store"] = "filesystem"
    del filesystem["common"]["storage"]["s3"]["bucketnames"]
    problems = loki_problems(filesystem, services)
    assert any("bucketnames" in p for p in problems) and any("want tsdb" in p for p in problems)
    no_backend = copy.deepcopy(services)
    del no_backend["loki-backend"]
    assert any("want read, write, backend" in p for p in loki_problems(loki, no_backend))
    no_secret = copy.deepcopy(services)
    del no_secret["loki-read"]["environment"]["MINIO_ROOT_PASSWORD"]
    assert any("MINIO_ROOT_PASSWORD" in p for p in loki_problems(loki, no_secret))


# --------------------------------------------------------------------------- VictoriaMetrics


def _flags(svc: dict[str, Any]) -> dict[str, str]:
    out = {}
    for arg in svc.get("command", []):
        key, _, value = arg.lstrip("-").partition("=")
        out[key] = value
    return out


def vm_problems(services: dict[str, dict[str, Any]], prometheus: dict[str, Any]) -> list[str]:
    """What VictoriaMetrics' cluster documentation requires: vminsert and vmselect list
    every vmstorage node (-storageNode, ports 8400 for inserts, 8401 for selects), the same
    -replicationFactor (at most the number of nodes), vmselect deduplicating replicated
    samples (-dedup.minScrapeInterval), vmstorage with -storageDataPath on a volume and a
    -retentionPeriod; Prometheus remote-writes to vminsert's /insert/<tenant>/prometheus."""
    problems = []
    storage = sorted(n for n, s in services.items() if "/vmstorage:" in s.get("image", ""))
    if len(storage) < 2:
        problems.append("fewer than 2 vmstorage nodes: nothing to replicate to")
    for name in storage:
        flags = _flags(services[name])
        path = flags.get("storageDataPath")
        if not path or not any(v.endswith(f":{path}") for v in services[name].get("volumes", [])):
            problems.append(f"{name}: -storageDataPath not on a volume")
        if not flags.get("retentionPeriod"):
            problems.append(f"{name}: -retentionPeriod unset (default 1 month)")
    factors = []
    for role, port in (("vminsert", 8400), ("vmselect", 8401)):
        flags = _flags(services.get(role, {}))
        nodes = sorted(n.rsplit(":", 1)[0] for n in flags.get("storageNode", "").split(",") if n)
        if nodes != storage:
            problems.append(f"{role}: -storageNode {nodes} != vmstorage nodes {storage}")
        if not all(n.endswith(f":{port}") for n in flags.get("storageNode", "").split(",")):
            problems.append(f"{role}: -storageNode must use port {port}")
        factors.append(int(flags.get("replicationFactor", "1")))
    if len(set(factors)) != 1:
        problems.append(f"-replicationFactor differs between vminsert and vmselect: {factors}")
    elif factors[0] > len(storage):
        problems.append("-replicationFactor exceeds the number of vmstorage nodes")
    elif factors[0] > 1 and not _flags(services["vmselect"]).get("dedup.minScrapeInterval"):
        problems.append("vmselect: -dedup.minScrapeInterval needed with replication")
    urls = [rw.get("url", "") for rw in prometheus.get("remote_write", [])]
    if not any(
        re.fullmatch(r"http://vminsert:8480/insert/\d+/prometheus/api/v1/write", u) for u in urls
    ):
        problems.append(f"prometheus remote_write {urls} does not reach vminsert")
    return problems


def test_victoriametrics_cluster_flags(services: dict[str, dict[str, Any]]) -> None:
    assert vm_problems(services, yaml.safe_load(PROMETHEUS.read_text())) == []


def test_victoriametrics_checker_fails_on_broken_flags(
    services: dict[str, dict[str, Any]],
) -> None:
    prom = yaml.safe_load(PROMETHEUS.read_text())
    one_node = copy.deepcopy(services)
    one_node["vminsert"]["command"] = ["-storageNode=vmstorage-1:8400", "-replicationFactor=2"]
    problems = vm_problems(one_node, prom)
    assert any("storageNode" in p for p in problems)
    no_dedup = copy.deepcopy(services)
    no_dedup["vmselect"]["command"] = [
        c for c in no_dedup["vmselect"]["command"] if "dedup" not in c
    ]
    assert any("dedup" in p for p in vm_problems(no_dedup, prom))
    assert any("remote_write" in p for p in vm_problems(services, {"remote_write": []}))


def test_prometheus_uses_the_scale_config(services: dict[str, dict[str, Any]]) -> None:
    prom = services["prometheus"]
    assert "--config.file=/etc/prometheus/prometheus-scale.yml" in prom["command"]
    mount = "./monitoring/prometheus/prometheus-scale.yml:/etc/prometheus/prometheus-scale.yml:ro"
    assert mount in prom["volumes"]


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed")
def test_promtool_accepts_the_scale_config() -> None:
    result = subprocess.run(
        ["promtool", "check", "config", str(PROMETHEUS)], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
