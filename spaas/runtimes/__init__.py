"""Runtimes start and stop the "containers" of SIGs: one master and N workers each."""

from spaas.runtimes.base import Container, ContainerSpec, Runtime, container_name

__all__ = ["Container", "ContainerSpec", "Runtime", "container_name"]
