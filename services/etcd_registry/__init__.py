"""The host registry service: host -> IP/ports lookups over HTTP, and a sweep of stale entries.

Agents own their host keys (`{p}/hosts/{tenant}/{sig}/{host}`, written with a lease and kept
alive); this service only reads them and removes what can no longer be live: entries without a
lease and entries of SIGs whose spec is gone.
"""
