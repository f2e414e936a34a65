"""A Kubernetes API emulator over HTTP (kmock) for the kubernetes runtime's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.kubernetes.harness import ApiServer


@pytest.fixture
def kube_api() -> Iterator[ApiServer]:
    with ApiServer() as server:
        yield server
