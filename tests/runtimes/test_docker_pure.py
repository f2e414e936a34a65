"""The docker runtime's and image builder's pure parts: limits, labels, names, Dockerfile."""

from __future__ import annotations

import pytest

from services.agent.address import ip_in_subnet, resolve
from services.builder.dockerimage import dockerfile
from services.builder.planner import plan
from spaas.runtimes.base import ContainerSpec
from spaas.runtimes.docker import from_labels, labels, resources  # noqa: E402

SPEC = ContainerSpec(name="acme-etl-worker-3", tenant="acme", sig="etl", role="worker", index=3, config_hash="abc",
                     generation=7, artifact="spaas-sig:k1", cpu=1, memory_mb=1024, max_cpu=4, max_memory_mb=2048)


@pytest.mark.parametrize("host_cpus, max_cpu, nano", [(2, 4, 2_000_000_000), (8, 4, 4_000_000_000), (0, 3, 3_000_000_000)])
def test_cpu_limit_is_clamped_to_the_host(host_cpus: int, max_cpu: int, nano: int) -> None:
    spec = ContainerSpec(**{**SPEC.__dict__, "max_cpu": max_cpu})
    assert resources(spec, host_cpus)["nano_cpus"] == nano


def test_requests_are_reservations_and_maxima_are_limits() -> None:
    out = resources(SPEC, 2)
    assert out == {"nano_cpus": 2_000_000_000, "cpu_shares": 1024, "mem_limit": "2048m", "mem_reservation": "1024m"}


def test_gpus_become_device_requests() -> None:
    out = resources(ContainerSpec(**{**SPEC.__dict__, "gpu": 2}), 2)
    (req,) = out["device_requests"]
    assert req["Count"] == 2 and req["Capabilities"] == [["gpu"]]


def test_labels_round_trip_to_a_container() -> None:
    attrs = {"Labels": labels(SPEC, "spaas"), "State": "running", "Created": 12}
    c = from_labels(attrs)
    assert c is not None
    assert (c.name, c.tenant, c.sig, c.role, c.index, c.config_hash, c.generation, c.running) == (
        "acme-etl-worker-3", "acme", "etl", "worker", 3, "abc", 7, True)
    assert from_labels({"Labels": {}, "State": "running"}) is None
    assert from_labels(dict(attrs, State="exited")).running is False  # type: ignore[union-attr]


def test_sig_dockerfile_puts_packages_in_their_own_layer_and_bakes_no_conf() -> None:
    p = plan({"spark_version": "3.5.9", "python_packages": ["Toolz==0.12.1"], "spark_conf": {"a": "b"}},
             base="docker-x", runtime="docker")
    text = dockerfile(p, "sha256:abc", tenant="acme", sig="etl")
    lines = text.splitlines()
    assert lines[0] == "FROM sha256:abc"
    assert lines[1].startswith("LABEL ") and f'spaas.build_key="{p.key}"' in lines[1] and 'spaas.tenant="acme"' in lines[1]
    assert lines[2].startswith("RUN /opt/sig/venv/bin/pip install") and "toolz==0.12.1" in lines[2]
    assert "spark" not in lines[2].split("install", 1)[1].split("&&")[0]
    assert len(lines) == 3


def test_sig_without_packages_is_a_label_on_the_spark_image() -> None:
    p = plan({"spark_version": "3.5.9", "python_packages": []}, base="docker-x", runtime="docker")
    assert len(dockerfile(p, "sha256:abc").splitlines()) == 2


def test_build_key_depends_on_runtime_and_spark_image_not_on_conf() -> None:
    spec = {"spark_version": "3.5.9", "python_packages": ["toolz"]}
    k = plan(spec, base="docker-a", runtime="docker").key
    assert plan(dict(spec, spark_conf={"x": "y"}), base="docker-a", runtime="docker").key == k
    assert plan(spec, base="docker-b", runtime="docker").key != k
    assert plan(spec, base="docker-a", runtime="process").key != k


def test_advertise_auto_picks_the_address_in_the_sig_subnet() -> None:
    assert resolve("10.1.2.3", "") == "10.1.2.3"
    assert ip_in_subnet("127.0.0.0/8").startswith("127.")


def test_addresses_come_from_the_sig_network_only() -> None:
    from spaas.runtimes.base import Address
    from spaas.runtimes.docker import sig_addresses

    def item(name: str, state: str, nets: dict[str, str], sig: str = "etl") -> dict[str, object]:
        return {"Labels": {"spaas.name": name, "spaas.tenant": "acme", "spaas.sig": sig, "spaas.role": "master"},
                "State": state, "NetworkSettings": {"Networks": {n: {"IPAddress": ip} for n, ip in nets.items()}}}

    items = [item("acme-etl-master-0", "running", {"spaas-platform": "172.20.0.5", "st-acme-etl": "10.1.0.2"}),
             item("acme-etl-worker-0", "exited", {"st-acme-etl": "10.1.0.3"}),
             item("acme-b-master-0", "running", {"spaas-platform": "172.20.0.6"}, sig="b"),  # not on its SIG network
             {"Labels": {}, "State": "running", "NetworkSettings": {"Networks": {"st-acme-etl": {"IPAddress": "1.2.3.4"}}}}]
    assert sig_addresses(items, lambda t, s: f"st-{t}-{s}") == {"acme-etl-master-0": Address("10.1.0.2")}
