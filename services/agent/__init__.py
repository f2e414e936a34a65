"""The agent: runs inside every SIG container as its master or a worker."""
