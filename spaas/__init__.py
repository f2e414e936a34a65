"""spaas: multi-tenant Spark as a service. The shared library every service imports."""

__version__ = "0.1.0"
