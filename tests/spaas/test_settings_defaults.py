"""Settings defaults, pinned (conventions 2, after kopf): a changed default is a visible decision.

Each settings class's defaults (`XSettings.from_env({})`) must equal `BASE` plus its own table in
`OWN`. A failure names the class and field; change the table in the same commit as the default (and
the README's settings table, and the Helm chart's values if the setting is rendered there).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from spaas import settings as S

BASE = {'etcd_url': 'http://127.0.0.1:2379',
 'redis_url': 'redis://127.0.0.1:6379/0',
 'state_dir': '.state',
 'etcd_prefix': '/spaas',
 'etcd_user': '',
 'etcd_password': '',
 'call_timeout_s': 5.0,
 'log_level': 'INFO'}
OWN = {'AgentSettings': {'tenant': '',
                   'sig': '',
                   'role': '',
                   'index': 0,
                   'container': '',
                   'artifact_dir': '.',
                   'container_dir': '.',
                   'config_hash': '',
                   'generation': 0,
                   'advertise_ip': '127.0.0.1',
                   'advertise_subnet': '',
                   'host_ttl_s': 10,
                   'app_scan_s': 2.0,
                   'daemon_memory': '512m',
                   'worker_cores': 2,
                   'worker_memory_mb': 2048,
                   'max_drivers': 4,
                   'decommission_s': 20.0,
                   'notebook_user': '',
                   'notebook_token': '',
                   'pool': ''},
 'ApiSettings': {'host': '127.0.0.1',
                 'port': 8080,
                 'admin_token_file': '.',
                 'admin_token': '',
                 'spark_versions': ('3.5.9', '4.1.4'),
                 'max_upload_bytes': 67108864,
                 'threads': 8,
                 'follow_max_s': 55.0,
                 'ldap_url': '',
                 'ldap_base_dn': '',
                 'ldap_user_filter': '(uid={username})',
                 'ldap_group_filter': '(|(&(objectClass=groupOfNames)(member={user_dn}))(&(objectClass=posixGroup)(memberUid={username})))',
                 'ldap_group_name_attr': 'cn',
                 'ldap_bind_dn': '',
                 'ldap_bind_password': '',
                 'ldap_start_tls': False,
                 'ldap_ca_file': '',
                 'ldap_timeout_s': 5.0,
                 'cluster_admin_users': (),
                 'cluster_admin_groups': (),
                 'session_ttl_s': 28800,
                 'api_token_max_ttl_s': 31536000,
                 'login_max_failures': 5,
                 'login_max_failures_per_addr': 20,
                 'login_window_s': 300,
                 'audit_retention_days': 30,
                 'livy_session_timeout_s': 3600,
                 'proxy_public_url': '',
                 'trusted_proxies': (),
                 'integration_redis_url': '',
                 'integration_queue': 'spaas.integrations.requests',
                 'idempotency_ttl_s': 86400,
                 'read_cache': True,
                 'history_default': True},
 'BuilderSettings': {'layers_dir': '.',
                     'concurrency': 2,
                     'resync_s': 5.0,
                     'build_timeout_s': 1800.0,
                     'lock_ttl_s': 10,
                     'pip_args': (),
                     'health_port': 0,
                     'runtime': 'process',
                     'docker_url': '',
                     'spark_image': 'spaas-spark:{version}',
                     'image_repository': 'spaas-sig',
                     'registry': '',
                     'registry_user': '',
                     'registry_password': '',
                     'k8s_api_url': '',
                     'k8s_namespace': 'default',
                     'k8s_stack': 'spaas',
                     'k8s_instance': 'spaas',
                     'k8s_push_secret': '',
                     'kaniko_image': 'gcr.io/kaniko-project/executor:v1.23.2'},
 'IntegrationsSettings': {'api_url': 'http://127.0.0.1:8080',
                          'integration_queue': 'spaas.integrations.requests',
                          'poll_s': 1.0,
                          'resync_s': 15.0,
                          'health_port': 0,
                          'request_timeout_s': 60.0},
 'ProxySettings': {'host': '127.0.0.1',
                   'port': 8090,
                   'health_port': 0,
                   'api_url': 'http://127.0.0.1:8080',
                   'proxy_tls_cert': '',
                   'proxy_tls_key': '',
                   'refresh_s': 1.0,
                   'auth_cache_s': 10.0,
                   'cluster_admin_users': (),
                   'cluster_admin_groups': (),
                   'connect_timeout_s': 5.0,
                   'upstream_timeout_s': 60.0,
                   'idle_timeout_s': 75.0,
                   'max_header_bytes': 65536,
                   'max_body_bytes': 134217728,
                   'max_response_bytes': 536870912,
                   'proxy_deny': ()},
 'RegistrySettings': {'host': '127.0.0.1', 'port': 8081, 'sweep_s': 10.0},
 'ScalerSettings': {'runtime': 'process',
                    'docker_url': '',
                    'docker_network': '',
                    'docker_state_volume': '',
                    'docker_stack': 'spaas',
                    'docker_proxy_container': '',
                    'stop_grace_s': 30.0,
                    'resync_s': 2.0,
                    'agent_python': '',
                    'health_port': 0,
                    'k8s_api_url': '',
                    'k8s_namespace': 'default',
                    'k8s_stack': 'spaas',
                    'k8s_instance': 'spaas',
                    'k8s_state_claim': '',
                    'k8s_service_account': '',
                    'k8s_pull_secret': '',
                    'k8s_master_cpu': '',
                    'k8s_master_memory': '',
                    'k8s_arch_amd64': 2,
                    'k8s_arch_ppc64le': 2,
                    'k8s_dli_frameworks_claim': '',
                    'k8s_dli_sharedfs_claim': '',
                    'k8s_resource_quota': True,
                    'warm_pool_size': 0,
                    'warm_pool_workers': 1},
 'StackSettings': {'api_port': 8080,
                   'registry_port': 8081,
                   'proxy_port': 8090,
                   'redis_port': 0,
                   'etcd_port': 0,
                   'spark_versions': ('3.5.9', '4.1.4'),
                   'layers_dir': '.'}}
def settings_classes() -> list[type[S.BaseSettings]]:
    return sorted((c for c in vars(S).values()
                   if isinstance(c, type) and issubclass(c, S.BaseSettings) and c is not S.BaseSettings),
                  key=lambda c: c.__name__)


def defaults(cls: type[S.BaseSettings]) -> dict[str, Any]:
    made = cls.from_env({})
    values = {f.name: getattr(made, f.name) for f in dataclasses.fields(cls)}
    return {k: str(v) if isinstance(v, Path) else v for k, v in values.items()}


def test_every_settings_class_is_pinned() -> None:
    assert sorted(OWN) == [c.__name__ for c in settings_classes()]


@pytest.mark.parametrize("cls", settings_classes(), ids=lambda c: c.__name__)
def test_defaults_are_pinned(cls: type[S.BaseSettings]) -> None:
    expected = {**BASE, **OWN[cls.__name__]}
    actual = defaults(cls)
    changed = {k: (expected.get(k, "<absent>"), actual.get(k, "<absent>"))
               for k in sorted(set(expected) | set(actual)) if expected.get(k, "<absent>") != actual.get(k, "<absent>")}
    assert not changed, f"{cls.__name__} defaults moved (field: (pinned, now)): {changed}"


def test_environment_overrides_defaults_with_types() -> None:
    made = S.ScalerSettings.from_env({"SPAAS_CALL_TIMEOUT_S": "2.5", "SPAAS_ETCD_PREFIX": "/x",
                                      "SPAAS_STATE_DIR": "/tmp/s", "SPAAS_REDIS_URL": "redis://h:1/2"})
    assert made.call_timeout_s == 2.5 and made.etcd_prefix == "/x"
    assert made.state_dir == Path("/tmp/s") and made.redis_url == "redis://h:1/2"
    assert S.ScalerSettings.from_env({}) == S.ScalerSettings()  # nothing set: exactly the defaults


def test_settings_are_frozen() -> None:
    with pytest.raises(dataclasses.FrozenInstanceError):
        S.ApiSettings().port = 1  # type: ignore[misc]
