"""Artifact builder for the Docker runtime: one image per build key.

    FROM <the Spark image of the SIG's version, by image id>
    LABEL spaas.build_key=... spaas.tenant=... spaas.sig=... spaas.spark_version=...
    ARG SPAAS_PIP_ARG_0 ...                                             (only with SPAAS_PIP_ARGS)
    RUN /opt/sig/venv/bin/pip install "$SPAAS_PIP_ARG_0" ... <the SIG's python_packages>   (its own layer)

The operator's pip arguments (an index URL with a password, say) are build arguments, not text
of the Dockerfile: the Dockerfile shown in the build log holds no credential, and neither does
the image's filesystem or environment (only `docker history`, which tenants never see). Every
line logged and every error passes the redactor (`spaas.redact`).

Tagged `<repo>:<build key>`; the tag is the artifact (pushed to a registry first when one is
configured). Spark conf is not baked in: the agent applies it when a container starts, so a
conf-only change restarts containers and never rebuilds. The build key includes the Spark image's
id (`base_for`), so a new Spark image (new agent code, new recipe) gives new keys.
"""

from __future__ import annotations

import io
import json
import shlex
import tarfile
import time
from collections.abc import Callable
from typing import Any

import docker
import docker.errors

from spaas.errors import PermanentError, TemporaryError
from spaas.redact import Redactor
from spaas.runtimes.docker import ENGINE_ERRORS, translate

from services.builder.planner import BuildPlan

Log = Callable[[str], None]


def build_args(pip_args: tuple[str, ...]) -> dict[str, str]:
    """The Docker build arguments that carry the operator's pip arguments (pure)."""
    return {f"SPAAS_PIP_ARG_{i}": arg for i, arg in enumerate(pip_args)}


def dockerfile(plan: BuildPlan, spark_image: str, *, pip_args: tuple[str, ...] = (),
               tenant: str = "", sig: str = "") -> str:
    """The SIG image's Dockerfile (pure). `pip_args` appear only as references to build
    arguments (`build_args`), never as their values."""
    label_values = {"spaas.image": "sig", "spaas.build_key": plan.key, "spaas.spark_version": plan.spark_version,
                    "spaas.tenant": tenant, "spaas.sig": sig}
    lines = [f"FROM {spark_image}",
             "LABEL " + " ".join(f"{k}={json.dumps(v)}" for k, v in label_values.items())]
    if plan.python_packages:
        names = list(build_args(pip_args))
        lines += [f"ARG {name}" for name in names]
        args = " ".join([*(f'"${name}"' for name in names), *(shlex.quote(a) for a in plan.python_packages)])
        lines.append("RUN /opt/sig/venv/bin/pip install --no-cache-dir --disable-pip-version-check --no-input "
                     f"{args} && /opt/sig/venv/bin/python -c 'import pyspark'")
    return "\n".join(lines) + "\n"


def _context(text: str) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        data = text.encode()
        info = tarfile.TarInfo("Dockerfile")
        info.size = len(data)
        info.mtime = 0
        tar.addfile(info, io.BytesIO(data))
    buf.seek(0)
    return buf


class DockerImageBuilder:
    def __init__(self, client: docker.DockerClient, *, spark_image: str = "spaas-spark:{version}",
                 repository: str = "spaas-sig", registry: str = "", registry_user: str = "",
                 registry_password: str = "", pip_args: tuple[str, ...] = (), timeout_s: float = 1800.0) -> None:
        self._client = client
        self._spark_image = spark_image
        self._repo = f"{registry.rstrip('/')}/{repository}" if registry else repository
        self._registry = registry
        self._auth = {"username": registry_user, "password": registry_password} if registry_user else None
        self._pip_args = pip_args
        self._timeout = timeout_s
        self._redact = Redactor([registry_password], texts=(*pip_args, registry))

    def image_ref(self, plan: BuildPlan) -> str:
        return f"{self._repo}:{plan.key}"

    def spark_image_id(self, version: str) -> str:
        """The id of the Spark image for `version`; what SIG images are built FROM."""
        name = self._spark_image.format(version=version)
        try:
            return str(self._client.images.get(name).id)
        except docker.errors.ImageNotFound as exc:
            raise TemporaryError(f"Spark image {name} not found; build it with deploy/images/build.sh {version}") from exc
        except ENGINE_ERRORS as exc:
            raise translate(f"inspect {name}", exc) from exc

    def base_for(self, version: str) -> str:
        """The planner's `base`: the Spark image's id, so a new Spark image means new build keys."""
        return "docker-" + self.spark_image_id(version).split(":")[-1][:16]

    def existing(self, plan: BuildPlan) -> str | None:
        ref = self.image_ref(plan)
        try:
            self._client.images.get(ref)
            return ref
        except docker.errors.ImageNotFound:
            return None
        except ENGINE_ERRORS as exc:
            raise translate(f"inspect {ref}", exc) from exc

    def build(self, plan: BuildPlan, log: Log) -> str:
        ref = self.image_ref(plan)
        text = dockerfile(plan, self.spark_image_id(plan.spark_version), pip_args=self._pip_args,
                          tenant=plan.tenant, sig=plan.sig)
        for line in text.splitlines():
            log(self._redact("| " + line))
        deadline = time.monotonic() + self._timeout
        errors: list[str] = []
        tail: list[str] = []
        try:
            stream = self._client.api.build(fileobj=_context(text), custom_context=True, tag=ref, rm=True,
                                            forcerm=True, pull=False, decode=True, timeout=int(self._timeout),
                                            buildargs=build_args(self._pip_args) or None)
            for chunk in stream:
                line = self._redact(str(chunk.get("stream") or chunk.get("status") or "").rstrip("\n"))
                if chunk.get("error"):
                    errors.append(self._redact(str(chunk["error"]).strip()))
                    line = "ERROR: " + errors[-1]
                for part in line.splitlines():
                    if part.strip():
                        log(part)
                        tail = (tail + [part])[-20:]
                if time.monotonic() > deadline:
                    raise PermanentError(f"image build timed out after {self._timeout:.0f}s")
        except ENGINE_ERRORS as exc:
            raise TemporaryError(self._redact(translate(f"building image {ref}", exc).message)) from None
        if errors:
            self._prune(plan)
            pip_errors = [t for t in tail if "ERROR" in t or "error" in t] or errors
            raise PermanentError(f"building image {ref} failed: " + " | ".join(pip_errors)[-1500:])
        if self._registry:
            self._push(ref, log)
        return ref

    def _prune(self, plan: BuildPlan) -> None:
        """A failed build leaves its untagged layers behind; they go."""
        try:
            self._client.images.prune(filters={"dangling": True, "label": f"spaas.build_key={plan.key}"})
        except ENGINE_ERRORS:
            pass

    def _push(self, ref: str, log: Log) -> None:
        repo, tag = ref.rsplit(":", 1)
        log(f"pushing {ref}")
        try:
            for chunk in self._client.api.push(repo, tag=tag, stream=True, decode=True, auth_config=self._auth):
                if chunk.get("error"):
                    raise PermanentError(self._redact(f"pushing {ref} failed: {chunk['error']}"))
                if chunk.get("status") and not chunk.get("progressDetail"):
                    log(self._redact(str(chunk["status"])))
        except ENGINE_ERRORS as exc:
            raise TemporaryError(self._redact(translate(f"pushing {ref}", exc).message)) from None

    def size(self, ref: str) -> dict[str, Any]:
        img = self._client.images.get(ref)
        return {"ref": ref, "size": img.attrs.get("Size"), "layers": len(img.history())}
