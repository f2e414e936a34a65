"""A real OpenLDAP server for the tests: Debian's `slapd`, started from a temp dir on a free
loopback port with a generated `slapd.conf` (mdb backend), seeded with `slapadd`, run as the
current user and stopped at the end of the session. It never uses the system's slapd instance.

Seed (base `dc=spaas,dc=test`):
    users   alice (cleartext password), bob ({SSHA}), carol, dave, erin, mallory, root-ish admin "opsadmin"
    groups  cn=acme-admins (groupOfNames: alice)   cn=acme-devs (posixGroup: bob, carol)
            cn=beta-users (groupOfNames: dave)     cn=platform-ops (groupOfNames: opsadmin)
"""

from __future__ import annotations

import base64
import hashlib
import os
import shutil
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from spaas.stack import free_port

BASE_DN = "dc=spaas,dc=test"
ROOT_DN = f"cn=manager,{BASE_DN}"
ROOT_PW = "manager-secret"
SCHEMA_DIR = Path("/etc/ldap/schema")
MODULE_DIR = Path("/usr/lib/ldap")
PASSWORDS = {
    "alice": "alice-pw-1",
    "bob": "bob-pw-2",
    "carol": "carol-pw-3",
    "dave": "dave-pw-4",
    "erin": "erin-pw-5",
    "mallory": "mallory-pw-6",
    "opsadmin": "ops-pw-7",
}
SSHA_USERS = {"bob", "carol", "opsadmin"}
GROUPS_OF_NAMES = {"acme-admins": ["alice"], "beta-users": ["dave"], "platform-ops": ["opsadmin"]}
POSIX_GROUPS = {"acme-devs": ["bob", "carol"]}


def ssha(password: str, salt: bytes = b"spaas-salt") -> str:
    digest = hashlib.sha1(password.encode() + salt).digest()
    return "{SSHA}" + base64.b64encode(digest + salt).decode()


def seed_ldif() -> str:
    out = [f"dn: {BASE_DN}\nobjectClass: dcObject\nobjectClass: organization\ndc: spaas\no: spaas tests\n",
           f"dn: ou=people,{BASE_DN}\nobjectClass: organizationalUnit\nou: people\n",
           f"dn: ou=groups,{BASE_DN}\nobjectClass: organizationalUnit\nou: groups\n"]
    for i, (user, pw) in enumerate(sorted(PASSWORDS.items())):
        stored = ssha(pw) if user in SSHA_USERS else pw
        out.append(f"dn: uid={user},ou=people,{BASE_DN}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n"
                   f"uid: {user}\ncn: {user}\nsn: {user}\nuidNumber: {2000 + i}\ngidNumber: 2000\n"
                   f"homeDirectory: /home/{user}\nuserPassword: {stored}\n")
    for group, members in GROUPS_OF_NAMES.items():
        lines = "".join(f"member: uid={m},ou=people,{BASE_DN}\n" for m in members)
        out.append(f"dn: cn={group},ou=groups,{BASE_DN}\nobjectClass: groupOfNames\ncn: {group}\n{lines}")
    for i, (group, members) in enumerate(POSIX_GROUPS.items()):
        lines = "".join(f"memberUid: {m}\n" for m in members)
        out.append(f"dn: cn={group},ou=groups,{BASE_DN}\nobjectClass: posixGroup\ncn: {group}\n"
                   f"gidNumber: {3000 + i}\n{lines}")
    return "\n".join(out)


def slapd_conf(root: Path) -> str:
    schemas = "".join(f"include {SCHEMA_DIR / name}.schema\n" for name in ("core", "cosine", "nis", "inetorgperson"))
    return (f"{schemas}"
            f"pidfile {root / 'slapd.pid'}\n"
            f"modulepath {MODULE_DIR}\nmoduleload back_mdb\n"
            "database mdb\n"
            f"suffix \"{BASE_DN}\"\nrootdn \"{ROOT_DN}\"\nrootpw {ROOT_PW}\n"
            f"directory {root / 'db'}\nmaxsize 10485760\n"
            "access to attrs=userPassword by anonymous auth by self read by * none\n"
            "access to * by * read\n")


@dataclass
class Ldap:
    url: str
    base_dn: str = BASE_DN
    root_dn: str = ROOT_DN
    root_pw: str = field(default=ROOT_PW, repr=False)
    passwords: dict[str, str] = field(default_factory=lambda: dict(PASSWORDS), repr=False)


def _wait_for_port(port: int, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 15.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"slapd exited with {proc.returncode}: {log.read_text(errors='replace')[-2000:]}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"slapd did not listen on {port} within {timeout_s}s")


@pytest.fixture(scope="session")
def ldap_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Ldap]:
    slapd = shutil.which("slapd") or "/usr/sbin/slapd"
    slapadd = shutil.which("slapadd") or "/usr/sbin/slapadd"
    if not Path(slapd).exists():
        pytest.fail("slapd is not installed (apt-get install slapd ldap-utils); ./dev installs it")
    root = tmp_path_factory.mktemp("slapd")
    (root / "db").mkdir()
    conf = root / "slapd.conf"
    conf.write_text(slapd_conf(root))
    (root / "seed.ldif").write_text(seed_ldif())
    subprocess.run([slapadd, "-f", str(conf), "-l", str(root / "seed.ldif")], check=True, capture_output=True,
                   timeout=60)
    port = free_port()
    log = root / "slapd.log"
    with log.open("wb") as out:
        # -d 0: stay in the foreground (so we own the process), logging nothing but errors.
        proc = subprocess.Popen([slapd, "-f", str(conf), "-h", f"ldap://127.0.0.1:{port}/", "-d", "0"],
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        _wait_for_port(port, proc, log)
        yield Ldap(url=f"ldap://127.0.0.1:{port}")
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.wait(timeout=10)
