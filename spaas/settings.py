"""Typed, frozen settings for every service, read from `SPAAS_*` environment variables once.

Nothing else in spaas reads the environment: `__main__` modules call `XSettings.from_env()`
and pass the object down; tests construct settings directly. Each field has a default and a
one-line description (the comment above it).
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

T = TypeVar("T", bound="BaseSettings")

DEFAULT_SPARK_VERSIONS = ("3.5.9", "4.1.4")


def _convert(raw: str, annotation: Any) -> Any:
    text = str(annotation)
    if "tuple" in text:
        return tuple(item.strip() for item in raw.split(",") if item.strip())
    if "bool" in text:
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if "float" in text:
        return float(raw)
    if "int" in text:
        return int(raw)
    if "Path" in text:
        return Path(raw)
    return raw


def _or(path: Path, default: Path) -> Path:
    """`path` unless it is unset (empty), else `default`."""
    return default if str(path) in ("", ".") else path


@dataclass(frozen=True)
class BaseSettings:
    """Fields every service shares."""

    # etcd client URL (the v3 JSON gateway), the system of record.
    etcd_url: str = "http://127.0.0.1:2379"
    # Redis URL: message bus, Celery broker, log streams.
    redis_url: str = "redis://127.0.0.1:6379/0"
    # Root of all local state: artifacts, SIG storage, runtime records, logs.
    state_dir: Path = Path(".state")
    # Prefix of every etcd key, so several platforms can share one etcd.
    etcd_prefix: str = "/spaas"
    # etcd user (etcd RBAC); empty: no authentication. The scaler with "root" also enables auth.
    etcd_user: str = ""
    # Password of etcd_user.
    etcd_password: str = field(default="", repr=False)
    # Seconds allowed for each remote call (etcd, Redis).
    call_timeout_s: float = 5.0
    # Log level of the service's root logger.
    log_level: str = "INFO"

    @classmethod
    def from_env(cls: type[T], env: Mapping[str, str] | None = None) -> T:
        """Build settings from `SPAAS_<FIELD>` variables; unset ones keep their default."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            key = "SPAAS_" + f.name.upper()
            if key in env:
                values[f.name] = _convert(env[key], f.type)
        return cls(**values)

    def replace(self: T, **changes: Any) -> T:
        return dataclasses.replace(self, **changes)

    @property
    def storage_dir(self) -> Path:
        """Per-SIG storage: uploaded files and driver logs."""
        return self.state_dir / "storage"

    @property
    def artifacts_dir(self) -> Path:
        """Built SIG environments, one directory per build key."""
        return self.state_dir / "artifacts"

    @property
    def runtime_dir(self) -> Path:
        """Records of the process runtime's containers."""
        return self.state_dir / "runtime"


@dataclass(frozen=True)
class ApiSettings(BaseSettings):
    # Address the API binds to.
    host: str = "127.0.0.1"
    # Port of the API (0 picks a free one, printed at start).
    port: int = 8080
    # File the bootstrap admin token is written to on first start, mode 0600 (default: STATE_DIR/admin-token).
    admin_token_file: Path = Path("")
    # Use this admin token instead of generating one (e.g. from a secret store).
    admin_token: str = field(default="", repr=False)
    # Spark versions tenants may choose.
    spark_versions: tuple[str, ...] = DEFAULT_SPARK_VERSIONS
    # Largest file a tenant may upload, in bytes.
    max_upload_bytes: int = 64 * 1024 * 1024
    # WSGI worker threads.
    threads: int = 8
    # Longest one `?follow=true` log stream stays open, in seconds (it holds a worker thread; clients reconnect).
    follow_max_s: float = 55.0
    # LDAP server URL (ldap://host:389 or ldaps://host:636); empty disables LDAP login.
    ldap_url: str = ""
    # Base DN under which users and groups are searched (the seed's cluster.ldapBaseDn).
    ldap_base_dn: str = ""
    # Filter that finds a user; {username} is replaced by the escaped login name.
    ldap_user_filter: str = "(uid={username})"
    # Filter that finds a user's groups; {user_dn} and {username} are replaced (escaped).
    ldap_group_filter: str = ("(|(&(objectClass=groupOfNames)(member={user_dn}))"
                              "(&(objectClass=posixGroup)(memberUid={username})))")
    # Attribute holding a group's name (what members/group/{name} grants refer to).
    ldap_group_name_attr: str = "cn"
    # DN to bind as for searches (empty: search anonymously).
    ldap_bind_dn: str = ""
    # Password of ldap_bind_dn.
    ldap_bind_password: str = field(default="", repr=False)
    # Upgrade ldap:// connections with StartTLS.
    ldap_start_tls: bool = False
    # CA bundle that verifies the LDAP server's certificate (empty: the system's).
    ldap_ca_file: str = ""
    # Seconds allowed to connect to and for each answer from the LDAP server.
    ldap_timeout_s: float = 5.0
    # Users who are cluster admins (besides the bootstrap admin token), comma separated.
    cluster_admin_users: tuple[str, ...] = ()
    # LDAP groups whose members are cluster admins, comma separated.
    cluster_admin_groups: tuple[str, ...] = ()
    # Lifetime of a login token, in seconds.
    session_ttl_s: int = 8 * 3600
    # Longest lifetime of a personal API token, in seconds (also its default).
    api_token_max_ttl_s: int = 365 * 86400
    # Failed logins per user name within login_window_s before 429.
    login_max_failures: int = 5
    # Failed logins per client address within login_window_s before 429.
    login_max_failures_per_addr: int = 20
    # Window of the failed-login counters, in seconds.
    login_window_s: int = 300
    # Days the audit log keeps entries.
    audit_retention_days: int = 30
    # Seconds a Livy session may sit idle (no statement, no client heartbeat) before it ends; also
    # the most a client's heartbeatTimeoutInSecond may ask for.
    livy_session_timeout_s: int = 3600
    # Public base URL of services/proxy (e.g. https://spaas.example:8090); SIG and application
    # `ui_url`s point through it. Empty: `ui_url` is the master's own (internal) address.
    proxy_public_url: str = ""
    # Peers whose X-Forwarded-For is believed (IPs, CIDRs or host names, comma separated), e.g. services/proxy:
    # audit and login limits then see the client, not the proxy. Empty: the direct peer is the client.
    trusted_proxies: tuple[str, ...] = ()
    # Redis URL (without credentials) handed to integrations with their own user; empty: the
    # API's redis_url without its credentials (docs/integrations.md).
    integration_redis_url: str = ""
    # Request queue of the integrations worker (the name in every integration's ACL).
    integration_queue: str = "spaas.integrations.requests"
    # Seconds the API remembers an Idempotency-Key's first result.
    idempotency_ttl_s: int = 24 * 3600
    # Serve reads of tenants, grants, tokens, SIGs and applications from watch-backed in-memory
    # caches (spaas/cache.py); off: every read goes to etcd.
    read_cache: bool = True
    # `history.enabled` of a SIG whose spec leaves it unset (decided at create/update and stored in the
    # spec): every SIG runs a history server (1 cpu / 1024 MiB of the tenant's quota) unless its spec says no.
    history_default: bool = True

    @property
    def token_path(self) -> Path:
        return _or(self.admin_token_file, self.state_dir / "admin-token")


@dataclass(frozen=True)
class BuilderSettings(BaseSettings):
    # Shared, content-addressed Spark layers, one per Spark version and Python (default: STATE_DIR/layers).
    layers_dir: Path = Path("")
    # Builds run at once by this builder process.
    concurrency: int = 2
    # Seconds between full resyncs of unbuilt SIGs from etcd.
    resync_s: float = 5.0
    # Seconds a build may run before it is failed.
    build_timeout_s: float = 1800.0
    # TTL of the lease that marks a build in flight; a dead builder's lock expires after it.
    lock_ttl_s: int = 10
    # Extra pip arguments (e.g. "--index-url=..."), comma separated.
    pip_args: tuple[str, ...] = ()
    # Port of /healthz and /metrics (0 disables).
    health_port: int = 0
    # What artifacts are built for: "process" (local environments), "docker" or "kubernetes" (images).
    runtime: str = "process"
    # Docker engine URL for the docker runtime (empty: the local socket, /var/run/docker.sock).
    docker_url: str = ""
    # Docker: the Spark image SIG images are built FROM; {version} is the SIG's Spark version.
    spark_image: str = "spaas-spark:{version}"
    # Docker: repository of SIG images (tagged by build key).
    image_repository: str = "spaas-sig"
    # Docker: registry SIG images are pushed to (host[:port]); empty: keep them local.
    registry: str = ""
    # Docker: user for the registry (empty: push without login).
    registry_user: str = ""
    # Docker: password of registry_user.
    registry_password: str = field(default="", repr=False)
    # Kubernetes: API server URL (empty: in-cluster, the pod's ServiceAccount).
    k8s_api_url: str = ""
    # Kubernetes: namespace of build Jobs (the release's; the chart sets it).
    k8s_namespace: str = "default"
    # Kubernetes: prefix of build Job names and their app.kubernetes.io/instance (the chart's fullname, release).
    k8s_stack: str = "spaas"
    k8s_instance: str = "spaas"
    # Kubernetes: dockerconfigjson Secret Kaniko pushes with (empty: anonymous).
    k8s_push_secret: str = ""
    # Kubernetes: the Kaniko executor image of build Jobs.
    kaniko_image: str = "gcr.io/kaniko-project/executor:v1.23.2"

    @property
    def layers_path(self) -> Path:
        return _or(self.layers_dir, self.state_dir / "layers")


@dataclass(frozen=True)
class ScalerSettings(BaseSettings):
    # Which runtime runs SIG containers: "process", "docker" or "kubernetes".
    runtime: str = "process"
    # Docker engine URL for the docker runtime (empty: the local socket, /var/run/docker.sock).
    docker_url: str = ""
    # Docker: network of etcd and Redis that SIG containers join besides their own (empty: none).
    docker_network: str = ""
    # Docker: named volume holding STATE_DIR (SIG storage is bind-mounted from it); empty: STATE_DIR is a host path.
    docker_state_volume: str = ""
    # Docker: prefix of container and network names, and the value of their spaas.stack label.
    docker_stack: str = "spaas"
    # Docker: the proxy's container, connected to every SIG network (empty: none).
    docker_proxy_container: str = ""
    # Seconds a stopping container gets after SIGTERM (a worker decommissions) before it is killed.
    stop_grace_s: float = 30.0
    # Seconds between full reconciliations of every SIG.
    resync_s: float = 2.0
    # Python interpreter that runs the agent in process containers (default: the scaler's own).
    agent_python: str = ""
    # Port of /healthz and /metrics (0 disables).
    health_port: int = 0
    # Kubernetes: API server URL (empty: in-cluster, the pod's ServiceAccount).
    k8s_api_url: str = ""
    # Kubernetes: namespace of SIG objects (the release's; the chart sets it).
    k8s_namespace: str = "default"
    # Kubernetes: prefix of SIG object names (the chart's fullname).
    k8s_stack: str = "spaas"
    # Kubernetes: app.kubernetes.io/instance of SIG objects (the release name; its NetworkPolicies select it).
    k8s_instance: str = "spaas"
    # Kubernetes: PVC of the platform's state; SIG pods mount their storage/<tenant>/<sig> of it (empty: none).
    k8s_state_claim: str = ""
    # Kubernetes: ServiceAccount of SIG pods (empty: the namespace's default).
    k8s_service_account: str = ""
    # Kubernetes: dockerconfigjson Secret for pulling SIG images (empty: none).
    k8s_pull_secret: str = ""
    # Kubernetes: CPU and memory requests of SIG master pods (the seed's master.cpu/memory; empty: the SIG's).
    k8s_master_cpu: str = ""
    k8s_master_memory: str = ""
    # Kubernetes: node preference per architecture, 0 never .. 3 most preferred (the seed's arch.*).
    k8s_arch_amd64: int = 2
    k8s_arch_ppc64le: int = 2
    # Kubernetes: PVCs of the deep-learning add-on mounted into SIG pods (empty: none).
    k8s_dli_frameworks_claim: str = ""
    k8s_dli_sharedfs_claim: str = ""
    # Kubernetes: keep a ResourceQuota of the sum of the tenants' quotas over SIG pods.
    k8s_resource_quota: bool = True
    # Warm pool (process runtime): pre-started skeletons (master + workers) per Spark version that a
    # new SIG claims instead of starting cold; 0 disables it (docs/architecture.md, "Warm pool").
    warm_pool_size: int = 0
    # Workers in each pooled skeleton (a SIG claims one only when its min_workers is this number).
    warm_pool_workers: int = 1


@dataclass(frozen=True)
class RegistrySettings(BaseSettings):
    host: str = "127.0.0.1"
    # Port of the lookup API.
    port: int = 8081
    # Seconds between sweeps of stale host entries.
    sweep_s: float = 10.0


@dataclass(frozen=True)
class AgentSettings(BaseSettings):
    """Settings of one SIG container; the runtime sets the SIG-specific variables."""

    tenant: str = ""
    sig: str = ""
    # "master" or "worker".
    role: str = ""
    # Index of a worker within its SIG (0 for the master).
    index: int = 0
    # Deterministic container name.
    container: str = ""
    # Directory of the SIG's built environment (venv with pyspark).
    artifact_dir: Path = Path()
    # This container's own directory (work dirs, conf, logs).
    container_dir: Path = Path()
    # Hash of the build, conf and resources the container was started with.
    config_hash: str = ""
    # SIG generation this container was started for.
    generation: int = 0
    # Address this container advertises to Spark and the registry ("auto": its IP in advertise_subnet).
    advertise_ip: str = "127.0.0.1"
    # With advertise_ip "auto": the subnet of the SIG's own network (CIDR), set by the docker runtime.
    advertise_subnet: str = ""
    # TTL of the host registration lease.
    host_ttl_s: int = 10
    # Seconds between scans of the SIG's applications (events wake it sooner).
    app_scan_s: float = 2.0
    # Heap of the Spark master and worker daemons.
    daemon_memory: str = "512m"
    # Cores a worker offers to Spark.
    worker_cores: int = 2
    # Memory a worker offers to Spark, in MiB.
    worker_memory_mb: int = 2048
    # Most drivers run at once in the master container.
    max_drivers: int = 4
    # Seconds a stopping worker waits for its executors to finish after decommissioning.
    decommission_s: float = 20.0
    # Notebook containers (role "notebook"): whose server it is, and its token (set by the scaler).
    notebook_user: str = ""
    notebook_token: str = ""
    # Warm pool: the skeleton this container belongs to while pooled (empty: a SIG's container).
    pool: str = ""


@dataclass(frozen=True)
class StackSettings(BaseSettings):
    """Settings of `spaas up`: where the embedded stack puts things."""

    api_port: int = 8080
    registry_port: int = 8081
    # services/proxy, the one door for users (0 = pick a free port).
    proxy_port: int = 8090
    # 0 = pick a free port.
    redis_port: int = 0
    etcd_port: int = 0
    spark_versions: tuple[str, ...] = DEFAULT_SPARK_VERSIONS
    # Shared Spark layers directory passed to the builder (default: STATE_DIR/layers).
    layers_dir: Path = Path("")


@dataclass(frozen=True)
class ProxySettings(BaseSettings):
    """`services/proxy`: the one authenticated door (ingress paths and forward-proxy mode)."""

    # Address the proxy binds to.
    host: str = "127.0.0.1"
    # Port of the proxy (0 picks a free one).
    port: int = 8090
    # Port of /healthz and /metrics for Prometheus on 127.0.0.1-only scraping (0 disables; /healthz is also on `port`).
    health_port: int = 0
    # The API the proxy forwards /api/v1/ to.
    api_url: str = "http://127.0.0.1:8080"
    # PEM certificate chain; with proxy_tls_key the proxy speaks HTTPS only (session cookies get Secure).
    proxy_tls_cert: str = ""
    # PEM private key of proxy_tls_cert.
    proxy_tls_key: str = field(default="", repr=False)
    # Seconds between refreshes of the route table (SIG hosts, SIGs, grants) from etcd.
    refresh_s: float = 1.0
    # Seconds a resolved token (principal) is reused without asking etcd again.
    auth_cache_s: float = 10.0
    # Users who are cluster admins (as for the API), comma separated.
    cluster_admin_users: tuple[str, ...] = ()
    # LDAP groups whose members are cluster admins (as for the API), comma separated.
    cluster_admin_groups: tuple[str, ...] = ()
    # Seconds allowed to connect to an upstream.
    connect_timeout_s: float = 5.0
    # Seconds an upstream may take to start its answer (its status line and headers).
    upstream_timeout_s: float = 60.0
    # Seconds an idle client keep-alive connection stays open.
    idle_timeout_s: float = 75.0
    # Largest request line plus headers, in bytes (431 beyond).
    max_header_bytes: int = 64 * 1024
    # Largest request body, in bytes (413 beyond); the API's own upload limit is lower.
    max_body_bytes: int = 128 * 1024 * 1024
    # Largest response body from a Spark UI, in bytes (the response is cut beyond); 0: no limit.
    max_response_bytes: int = 512 * 1024 * 1024
    # Extra host:port pairs forward mode must never reach (the platform's own are always refused).
    proxy_deny: tuple[str, ...] = ()


@dataclass(frozen=True)
class IntegrationsSettings(BaseSettings):
    # URL of the REST API the worker executes requests through (with each message's token).
    api_url: str = "http://127.0.0.1:8080"
    # Request queue the worker consumes (must match the API's integration_queue).
    integration_queue: str = "spaas.integrations.requests"
    # Seconds between polls of etcd for application states and SIG phases to publish.
    poll_s: float = 1.0
    # Seconds between re-applying every integration's Redis user and event queue.
    resync_s: float = 15.0
    # Port of /healthz and /metrics (0: none).
    health_port: int = 0
    # Seconds allowed for each REST call the worker makes on a request's behalf.
    request_timeout_s: float = 60.0
