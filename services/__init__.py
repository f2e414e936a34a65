"""spaas services: one deployable process per package (api, builder, scaler, etcd_registry, agent)."""
