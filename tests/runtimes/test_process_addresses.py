"""The process runtime's verified addresses: 127.0.0.1 and the ports a container's own processes
listen on, read from the kernel, never from what the container registers."""

from __future__ import annotations

import socket
import sys
import time
from pathlib import Path

from spaas.runtimes.base import ContainerSpec
from spaas.runtimes.process import ProcessRuntime, parse_listening
from spaas.stack import free_port

PROC_NET_TCP = """\
  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 0100007F:1F90 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1001 1 0 100 0 0 10 0
   1: 00000000:0050 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1002 1 0 100 0 0 10 0
   2: 0500000A:1F91 00000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 1003 1 0 100 0 0 10 0
   3: 0100007F:1F92 0100007F:C350 01 00000000:00000000 00:00000000 00000000     0        0 1004 1 0 100 0 0 10 0
"""
PROC_NET_TCP6 = """\
  sl  local_address                         remote_address                        st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode
   0: 00000000000000000000000000000000:1F93 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2001 1 0 100 0 0 10 0
   1: 00000000000000000000000001000000:1F94 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2002 1 0 100 0 0 10 0
   2: 0000000000000000FFFF00000100007F:1F95 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2003 1 0 100 0 0 10 0
   3: 000080FE00000000FF005450B6AD1DFE:1F96 00000000000000000000000000000000:0000 0A 00000000:00000000 00:00000000 00000000     0        0 2004 1 0 100 0 0 10 0
"""


def test_listening_sockets_reachable_on_loopback_are_read_from_proc_net_tcp() -> None:
    # 127.0.0.1:8080 and 0.0.0.0:80 listen; 10.0.0.5:8081 is not on loopback; 8082 is a connection.
    assert parse_listening(PROC_NET_TCP) == {1001: 8080, 1002: 80}
    # [::]:8083, [::1]:8084 and [::ffff:127.0.0.1]:8085 listen; a link-local address does not count.
    assert parse_listening(PROC_NET_TCP6) == {2001: 8083, 2002: 8084, 2003: 8085}


LISTENER = """
import os, socket, sys, time
s = socket.socket()
s.bind(("127.0.0.1", int(sys.argv[1])))
s.listen()
time.sleep(120)
"""


def test_a_container_owns_the_ports_its_process_group_listens_on_and_nothing_else(tmp_path: Path) -> None:
    script = tmp_path / "listen.py"
    script.write_text(LISTENER)
    agent = tmp_path / "agent"  # stands in for the agent's interpreter: a child listens, and so does it
    agent.write_text(f"#!/bin/sh\n{sys.executable} {script} $PORT_CHILD &\nexec {sys.executable} {script} $PORT_LEADER\n")
    agent.chmod(0o755)
    leader, child, other = free_port(), free_port(), free_port()
    runtime = ProcessRuntime(tmp_path / "state", python=str(agent))
    outside = socket.socket()  # a platform service on the same loopback, not the container's
    outside.bind(("127.0.0.1", other))
    outside.listen()
    spec = ContainerSpec(name="acme-etl-master-0", tenant="acme", sig="etl", role="master", index=0, config_hash="h",
                         generation=1, artifact=str(tmp_path), env={"PORT_LEADER": str(leader), "PORT_CHILD": str(child)})
    try:
        runtime.start(spec)
        deadline = time.monotonic() + 30
        found = runtime.addresses().get(spec.name)
        while (found is None or found.ports != {leader, child}) and time.monotonic() < deadline:
            time.sleep(0.2)
            found = runtime.addresses().get(spec.name)
        assert found is not None and found.ip == "127.0.0.1"
        assert found.ports == {leader, child}
        assert found.owns("127.0.0.1", leader) and not found.owns("127.0.0.1", other)
        assert not found.owns("10.0.0.1", leader)
    finally:
        outside.close()
        runtime.stop_all(grace_s=2)
    assert runtime.addresses() == {}
