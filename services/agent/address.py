"""Which of this container's addresses to advertise (`SPAAS_ADVERTISE_IP=auto`).

A Docker SIG container sits on two networks: its SIG's own (where Spark talks) and the
platform's (etcd, Redis). The runtime passes the SIG network's subnet; the address is the one
the kernel picks as source towards that subnet (a UDP "connect" sends nothing).
"""

from __future__ import annotations

import ipaddress
import socket


def ip_in_subnet(subnet: str) -> str:
    """This host's IPv4 address inside `subnet` (CIDR); ValueError if it has none there."""
    net = ipaddress.ip_network(subnet, strict=False)
    probe = str(net.network_address + 1)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((probe, 9))
        ip = sock.getsockname()[0]
    if ipaddress.ip_address(ip) not in net:
        raise ValueError(f"no address of this container is in {subnet} (the route picks {ip})")
    return str(ip)


def resolve(advertise_ip: str, subnet: str) -> str:
    if advertise_ip != "auto":
        return advertise_ip
    if not subnet:
        return socket.gethostbyname(socket.gethostname())
    return ip_in_subnet(subnet)
