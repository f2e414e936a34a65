"""DockerRuntime against the real engine: names, labels, limits, networks, storage, idempotence, cleanup.

The containers run the Spark image's agent with no etcd to talk to, so they exit soon; what is
checked here is what the runtime asked the engine for, and that `list()` reads it back.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.docker.conftest import SPARK, require_docker

pytestmark = pytest.mark.docker


@pytest.fixture
def runtime(tmp_path: Path) -> Iterator[object]:
    require_docker(image=f"spaas-spark:{SPARK}")
    from spaas.runtimes.docker import DockerRuntime, connect

    rt = DockerRuntime(connect(), stack="rt" + uuid.uuid4().hex[:6], state_dir=tmp_path / "state",
                       env={"SPAAS_ETCD_URL": "http://127.0.0.1:1"}, stop_grace_s=2)
    yield rt
    for c in rt.list():
        rt.stop(c.name, grace_s=0)
    for tenant, sig in {("acme", "etl"), ("other", "etl")}:
        rt.cleanup_sig(tenant, sig)


def test_start_list_stop_and_cleanup(runtime: object, tmp_path: Path) -> None:
    from spaas.runtimes.base import ContainerSpec, container_name
    from spaas.runtimes.docker import DockerRuntime

    rt: DockerRuntime = runtime  # type: ignore[assignment]
    name = container_name("acme", "etl", "worker", 2)
    spec = ContainerSpec(name=name, tenant="acme", sig="etl", role="worker", index=2, config_hash="h1", generation=3,
                         artifact=f"spaas-spark:{SPARK}", cpu=1, memory_mb=600, max_cpu=1, max_memory_mb=700)
    rt.start(spec)
    rt.start(spec)  # idempotent: the same name is not started twice
    (c,) = rt.list()
    assert (c.name, c.tenant, c.sig, c.role, c.index, c.config_hash, c.generation) == (
        name, "acme", "etl", "worker", 2, "h1", 3)
    client = rt._client
    info = client.containers.get(rt.docker_name(name)).attrs
    assert info["HostConfig"]["NanoCpus"] == 10**9 and info["HostConfig"]["Memory"] == 700 * 2**20
    assert info["HostConfig"]["MemoryReservation"] == 600 * 2**20
    assert list(info["NetworkSettings"]["Networks"]) == [rt.network_name("acme", "etl")]
    storage = tmp_path / "state" / "storage" / "acme" / "etl"
    assert sorted(m["Destination"] for m in info["Mounts"]) == [str(storage), str(storage / "files")]
    env = dict(e.split("=", 1) for e in info["Config"]["Env"])
    assert env["SPAAS_ADVERTISE_IP"] == "auto" and env["SPAAS_ADVERTISE_SUBNET"]
    # Another tenant's SIG gets another network.
    rt.start(ContainerSpec(**{**spec.__dict__, "name": container_name("other", "etl", "worker", 2), "tenant": "other"}))
    other = client.containers.get(rt.docker_name(container_name("other", "etl", "worker", 2))).attrs
    assert list(other["NetworkSettings"]["Networks"]) == [rt.network_name("other", "etl")]
    rt.stop(name)
    assert [c.name for c in rt.list()] == [container_name("other", "etl", "worker", 2)]
    rt.stop(name)  # already gone: no error
    rt.cleanup_sig("other", "etl")
    assert rt.list() == []
    assert not client.networks.list(names=[rt.network_name("other", "etl")])


def test_addresses_are_each_running_containers_ip_on_its_sig_network(runtime: object) -> None:
    import time

    from spaas.runtimes.base import Address, ContainerSpec, container_name
    from spaas.runtimes.docker import DockerRuntime

    rt: DockerRuntime = runtime  # type: ignore[assignment]
    name = container_name("acme", "etl", "master", 0)
    rt.start(ContainerSpec(name=name, tenant="acme", sig="etl", role="master", index=0, config_hash="h", generation=1,
                           artifact=f"spaas-spark:{SPARK}", cpu=1, memory_mb=600, max_cpu=1, max_memory_mb=700))
    info = rt._client.containers.get(rt.docker_name(name)).attrs
    ip = info["NetworkSettings"]["Networks"][rt.network_name("acme", "etl")]["IPAddress"]
    found = rt.addresses()
    # The agent exits soon (no etcd): while it runs, its address is its IP on the SIG network.
    while name not in found and rt._client.containers.get(rt.docker_name(name)).status == "running":
        time.sleep(0.1)
        found = rt.addresses()
    assert found == {name: Address(ip)}
    assert found[name].owns(ip, 4040) and not found[name].owns("172.17.0.1", 4040)
    rt.stop(name, grace_s=0)
    assert rt.addresses() == {}


def test_a_notebook_container_mounts_only_its_users_folder_and_the_uploads_read_only(runtime: object,
                                                                                      tmp_path: Path) -> None:
    from spaas import notebooks as nb
    from spaas.runtimes.base import ContainerSpec
    from spaas.runtimes.docker import DockerRuntime

    rt: DockerRuntime = runtime  # type: ignore[assignment]
    storage = tmp_path / "state" / "storage" / "acme" / "etl"
    (storage / "notebooks" / "bob").mkdir(parents=True)
    name = nb.container_name("acme", "etl", "Alice")
    rt.start(ContainerSpec(name=name, tenant="acme", sig="etl", role=nb.ROLE, index=0, config_hash="h1", generation=1,
                           artifact=f"spaas-spark:{SPARK}", cpu=1, memory_mb=600, max_cpu=1, max_memory_mb=700,
                           env={"SPAAS_NOTEBOOK_USER": "Alice"}))
    info = rt._client.containers.get(rt.docker_name(name)).attrs
    mounts = {m["Destination"]: (m["Source"], m["RW"]) for m in info["Mounts"]}
    assert mounts == {str(storage / "notebooks" / "alice"): (str(storage / "notebooks" / "alice"), True),
                      str(storage / "files"): (str(storage / "files"), False)}
    assert (storage / "notebooks" / "alice").is_dir()
    assert not info["HostConfig"].get("Tmpfs")
    # Every other container of the SIG has the whole storage with an empty tmpfs over notebooks/:
    # its code cannot reach the users' folders, nor replace one with a link a notebook's bind would follow.
    rt.start(ContainerSpec(name="acme-etl-worker-0", tenant="acme", sig="etl", role="worker", index=0, config_hash="h1",
                           generation=1, artifact=f"spaas-spark:{SPARK}", cpu=1, memory_mb=600, max_cpu=1,
                           max_memory_mb=700))
    worker = rt._client.containers.get(rt.docker_name("acme-etl-worker-0")).attrs
    # files/ is bound onto itself there: a mount point, which its code cannot replace with a link.
    assert sorted((m["Destination"], m["Source"], m["RW"]) for m in worker["Mounts"]) == [
        (str(storage), str(storage), True), (str(storage / "files"), str(storage / "files"), True)]
    assert list(worker["HostConfig"]["Tmpfs"]) == [str(storage / "notebooks")]
