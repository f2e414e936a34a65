"""services/proxy: the one authenticated door to the API and every Spark UI (ingress and forward mode)."""
