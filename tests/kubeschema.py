"""Strict schema validation of Kubernetes objects for the version spaas targets (1.33), offline:
`kubernetes-validate` ships the OpenAPI-derived JSON schemas. Strict means an unknown field fails."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import kubernetes_validate

KUBERNETES_VERSION = "1.33.0"


def problems(objects: Iterable[dict[str, Any]]) -> list[str]:
    """One line per object that fails validation (empty: all pass)."""
    out = []
    for obj in objects:
        try:
            kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = "/".join(str(p) for p in exc.path)
            out.append(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {where}: {exc.message}")
        except (kubernetes_validate.SchemaNotFoundError, kubernetes_validate.InvalidSchemaError) as exc:
            out.append(f"{obj.get('kind')} {obj.get('metadata', {}).get('name')}: {exc}")
    return out


def assert_valid(objects: Iterable[dict[str, Any]]) -> None:
    found = problems(list(objects))
    assert not found, "invalid for Kubernetes " + KUBERNETES_VERSION + ":\n" + "\n".join(found)
