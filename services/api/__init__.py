"""The REST API (`/api/v1`): tenants, SIGs, files, applications. Writes specs to etcd and
announces them on the bus; never touches runtimes or builds directly."""
