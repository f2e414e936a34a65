"""The `spaas` command: the embedded dev stack (`up`, `down`, `status`) and a client of the REST API
built on `spaas.client` (login and contexts, tenants, SIGs, builds, files, applications, members,
tokens, scaling). docs/cli.md is its reference; `spaas COMMAND --help` says the rest.

Exit codes: 0 done; 1 the API refused (its error on stderr: status, code, field, message) or a wait
failed; 2 bad usage; `spaas submit` and `spaas app wait` exit with the application's outcome (see
`commands.APP_EXIT`).
"""

from __future__ import annotations

import sys

import click

from spaas.cli.commands import cli
from spaas.client import ApiError, SigFailed


def main(argv: list[str] | None = None) -> int:
    """Run the command; returns its exit code (`python -m spaas` and the `spaas` script exit with it)."""
    try:
        result = cli.main(args=argv if argv is not None else sys.argv[1:], prog_name="spaas",
                          complete_var="_SPAAS_COMPLETE", standalone_mode=False)
    except click.exceptions.Exit as exc:
        return int(exc.exit_code)
    except click.ClickException as exc:
        exc.show()
        return int(exc.exit_code)
    except (ApiError, SigFailed, TimeoutError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except click.Abort:
        print("aborted", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return int(result) if isinstance(result, int) else 0


__all__ = ["cli", "main"]
