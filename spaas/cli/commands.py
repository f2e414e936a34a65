"""The `spaas` commands (Click), each a thin layer over `spaas.client.Client`: read the options,
make one or a few client calls, print the answer (`spaas.cli.output`). Nothing here knows a route."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import urlsplit

import click
import yaml

from spaas.cli.config import Config, ConfigError, Context, config_path, load, save
from spaas.cli.output import FORMATS, SIG_STEPS, PhaseProgress, note, show
from spaas.client import ApiError, AppView, Client, SigFailed, SigView

if TYPE_CHECKING:
    from spaas.settings import StackSettings

F = TypeVar("F", bound=Callable[..., Any])

# `spaas submit` / `spaas app wait` exit with the application's outcome.
EXIT_FINISHED, EXIT_FAILED, EXIT_KILLED, EXIT_TIMEOUT = 0, 1, 137, 124
APP_EXIT = {"FINISHED": EXIT_FINISHED, "FAILED": EXIT_FAILED, "KILLED": EXIT_KILLED}
APP_STEPS = ["SUBMITTED", "STARTING", "RUNNING", "FINISHED"]


def app_exit_code(view: AppView) -> int:
    """0 FINISHED; FAILED: the driver's own exit code when it has one in 1-123, else 1; KILLED 137."""
    state = str(view.get("state"))
    if state == "FAILED":
        code = view.get("exit_code")
        return code if isinstance(code, int) and 1 <= code <= 123 else EXIT_FAILED
    return APP_EXIT.get(state, EXIT_FAILED)


class CliError(click.ClickException):
    """A failure the user can act on; printed as `error: ...`, exit 1."""

    def show(self, file: Any = None) -> None:
        click.echo(f"error: {self.format_message()}", err=True)


@dataclass
class State:
    """What every command shares: the config file and the options of the root command."""

    context_name: str | None = None
    url: str | None = None
    token: str | None = field(default=None, repr=False)
    path: Path = field(default_factory=config_path)
    _config: Config | None = None

    def config(self) -> Config:
        if self._config is None:
            try:
                self._config = load(self.path)
            except ConfigError as exc:
                raise CliError(str(exc)) from None
        return self._config

    def context(self) -> Context | None:
        try:
            return self.config().context(self.context_name)
        except ConfigError as exc:
            raise CliError(str(exc)) from None

    def client(self) -> Client:
        ctx = self.context()
        url = self.url or (ctx.url if ctx else None)
        if not url:
            raise CliError("no API to talk to: run `spaas login URL` first (or set SPAAS_URL and SPAAS_TOKEN)")
        token = self.token or (ctx.token if ctx and (not self.url or self.url == ctx.url) else None)
        if not token:
            raise CliError(f"not logged in to {url}: run `spaas login`")
        return Client(url, token, verify=not (ctx.insecure if ctx else False))

    def tenant(self, given: str | None) -> str:
        ctx = self.context()
        tenant = given or (ctx.tenant if ctx else None)
        if not tenant:
            raise click.UsageError("which tenant? pass -t/--tenant (or set a default: `spaas context set --tenant T`)")
        return tenant

    def sig(self, given: str | None) -> str:
        ctx = self.context()
        sig = given or (ctx.sig if ctx else None)
        if not sig:
            raise click.UsageError("which SIG? pass -s/--sig (or set a default: `spaas context set --sig S`)")
        return sig


pass_state = click.make_pass_decorator(State, ensure=True)


def output_option(f: F) -> F:
    return click.option("-o", "--output", type=click.Choice(FORMATS), default=None,
                        help="table (lists), yaml (one record) or json")(f)


def tenant_option(f: F) -> F:
    return click.option("-t", "--tenant", envvar="SPAAS_TENANT", help="tenant (default: the context's)")(f)


def sig_option(f: F) -> F:
    return click.option("-s", "--sig", envvar="SPAAS_SIG", help="SIG (default: the context's)")(f)


def load_spec(path: str) -> dict[str, Any]:
    """A spec file, YAML or JSON (`-` reads stdin)."""
    try:
        text = sys.stdin.read() if path == "-" else Path(path).read_text()
        spec = yaml.safe_load(text)
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror}") from None
    except yaml.YAMLError as exc:
        raise CliError(f"{path}: not YAML or JSON ({str(exc).splitlines()[0]})") from None
    if not isinstance(spec, dict):
        raise CliError(f"{path}: the spec must be a mapping of fields")
    return spec


class AliasGroup(click.Group):
    """Accepts `sig` for `sigs`, `app` for `apps` and so on, without listing the aliases twice."""

    aliases: dict[str, str] = {}

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        return super().get_command(ctx, self.aliases.get(cmd_name, cmd_name))

    def resolve_command(self, ctx: click.Context, args: list[str]) -> tuple[str | None, click.Command | None, list[str]]:
        name, cmd, rest = super().resolve_command(ctx, args)
        return (cmd.name if cmd else name), cmd, rest


class Root(AliasGroup):
    aliases = {"sig": "sigs", "app": "apps", "tenant": "tenants", "member": "members", "token": "tokens",
               "file": "files", "contexts": "context"}


@click.group(cls=Root, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--context", "context_name", envvar="SPAAS_CONTEXT", help="use this context of the config file")
@click.option("--url", envvar="SPAAS_URL", help="the API (or proxy) URL, instead of the context's")
@click.pass_context
def cli(ctx: click.Context, context_name: str | None, url: str | None) -> None:
    """spaas: multi-tenant Spark as a service.

    `spaas up|down|status` run the embedded dev stack; the other commands talk to the REST API as the
    user of the current context (`spaas login`). A token in SPAAS_TOKEN wins over the context's."""
    ctx.obj = State(context_name=context_name, url=url.rstrip("/") if url else None,
                    token=os.environ.get("SPAAS_TOKEN") or None)


# -- the embedded stack (what `spaas up|down|status` always did) ---------------------------------

def _stack_settings(state_dir: Path | None, port: int | None, proxy_port: int | None) -> StackSettings:
    from spaas.settings import StackSettings

    settings = StackSettings.from_env()
    if state_dir:
        settings = settings.replace(state_dir=state_dir)
    if port is not None:
        settings = settings.replace(api_port=port)
    if proxy_port is not None:
        settings = settings.replace(proxy_port=proxy_port)
    return settings


def stack_options(f: F) -> F:
    f = click.option("--proxy-port", type=int, help="proxy port (default $SPAAS_PROXY_PORT or 8090; 0 picks a free one)")(f)
    f = click.option("--port", type=int, help="API port (default 8080; 0 picks a free one)")(f)
    return click.option("--state-dir", type=click.Path(path_type=Path),
                        help="where state lives (default $SPAAS_STATE_DIR or ./.state)")(f)


@cli.command()
@stack_options
def up(state_dir: Path | None, port: int | None, proxy_port: int | None) -> int:
    """Start Redis, etcd and every service under a supervisor (or repair a partly dead stack)."""
    from spaas.cli import stack as stack_cmds  # the stack's modules load only for up/down/status

    return stack_cmds.cmd_up(_stack_settings(state_dir, port, proxy_port))


@cli.command()
@stack_options
def down(state_dir: Path | None, port: int | None, proxy_port: int | None) -> int:
    """Stop everything `spaas up` started, SIG containers included."""
    from spaas.cli import stack as stack_cmds  # the stack's modules load only for up/down/status

    return stack_cmds.cmd_down(_stack_settings(state_dir, port, proxy_port))


@cli.command()
@stack_options
def status(state_dir: Path | None, port: int | None, proxy_port: int | None) -> int:
    """What runs, and how often each component was restarted."""
    from spaas.cli import stack as stack_cmds  # the stack's modules load only for up/down/status

    return stack_cmds.cmd_status(_stack_settings(state_dir, port, proxy_port))


# -- login and contexts ----------------------------------------------------------------------

def _local_api() -> str | None:
    """The embedded stack's API, if `spaas up` runs here (the default for `spaas login`)."""
    from spaas.settings import StackSettings
    from spaas.stack import Stack

    stack = Stack.load(StackSettings.from_env().state_dir.resolve())
    return stack.api_url if stack is not None else None


@cli.command()
@click.argument("url", required=False)
@click.option("-u", "--user", help="LDAP user name (prompted for when neither it nor a token is given)")
@click.option("--password-stdin", is_flag=True, help="read the password from stdin (else SPAAS_PASSWORD, else a prompt)")
@click.option("--token", "token_arg", help="log in with an API token instead ('-' reads it from stdin)")
@click.option("--name", "name", help="name of the context to save (default user@host:port)")
@click.option("-t", "--tenant", help="default tenant of the context (default: your only tenant, if one)")
@click.option("-s", "--sig", help="default SIG of the context")
@click.option("--insecure", is_flag=True, help="do not verify the server's TLS certificate")
@pass_state
def login(state: State, url: str | None, user: str | None, password_stdin: bool, token_arg: str | None,
          name: str | None, tenant: str | None, sig: str | None, insecure: bool) -> int:
    """Log in (LDAP user and password, or an API token) and save the context as the current one.

    The token is kept in the config file (mode 0600) and never printed."""

    current = state.context()
    url = (url or state.url or (current.url if current else None) or _local_api() or "").rstrip("/")
    if not url:
        raise click.UsageError("which API? pass its URL: spaas login http://HOST:PORT")
    client = Client(url, verify=not insecure)
    if token_arg:
        token = sys.stdin.readline().strip() if token_arg == "-" else token_arg
        client.token = token
        client.list_tenants()  # proves the token works
    else:
        user = user or click.prompt("user")
        if password_stdin:
            password = sys.stdin.readline().rstrip("\n")
        else:
            password = os.environ.get("SPAAS_PASSWORD") or click.prompt("password", hide_input=True)
        token = client.login(user, password)
    if tenant is None:
        names = [t["name"] for t in client.list_tenants() if "invalid" not in t]
        tenant = names[0] if len(names) == 1 else None
    host = urlsplit(url).netloc or url
    name = name or f"{user or 'token'}@{host}"
    config = state.config()
    config.contexts[name] = Context(name=name, url=url, user=user, token=token, tenant=tenant, sig=sig,
                                    insecure=insecure)
    config.current = name
    save(config, state.path)
    note(f"logged in to {url} as {user or 'the token holder'}; context {name!r} saved in {state.path}"
         + (f" (tenant {tenant})" if tenant else ""))
    return 0


@cli.command()
@pass_state
def logout(state: State) -> int:
    """Revoke the current context's session token (API tokens made with it go too) and forget it."""
    ctx = state.context()
    if ctx is None or not ctx.token:
        note("not logged in")
        return 0
    try:
        state.client().logout()
    except ApiError as exc:
        if exc.status != 401:
            raise
    ctx.token = None
    save(state.config(), state.path)
    note(f"logged out of {ctx.url} (context {ctx.name!r} kept)")
    return 0


@cli.group(cls=AliasGroup)
def context() -> None:
    """Named contexts (API URL, user, token, default tenant and SIG), like kubectl's."""


@context.command("list")
@output_option
@pass_state
def context_list(state: State, output: str | None) -> None:
    """The contexts; * marks the current one."""
    config = state.config()
    show([dict(c.public(), current=c.name == config.current) for c in config.contexts.values()], output, kind="context")


@context.command("use")
@click.argument("name")
@pass_state
def context_use(state: State, name: str) -> None:
    """Make NAME the current context."""
    config = state.config()
    if name not in config.contexts:
        raise CliError(f"no context {name!r}; `spaas context list` shows them")
    config.current = name
    save(config, state.path)
    note(f"current context: {name}")


@context.command("current")
@pass_state
def context_current(state: State) -> None:
    """Print the current context's name."""
    ctx = state.context()
    if ctx is None:
        raise CliError("no current context: run `spaas login`")
    click.echo(ctx.name)


@context.command("set")
@click.option("-t", "--tenant", help="default tenant ('' clears it)")
@click.option("-s", "--sig", help="default SIG ('' clears it)")
@pass_state
def context_set(state: State, tenant: str | None, sig: str | None) -> None:
    """Set the current context's default tenant and SIG."""
    ctx = state.context()
    if ctx is None:
        raise CliError("no current context: run `spaas login`")
    if tenant is not None:
        ctx.tenant = tenant or None
    if sig is not None:
        ctx.sig = sig or None
    save(state.config(), state.path)
    note(f"context {ctx.name}: tenant {ctx.tenant or '-'}, SIG {ctx.sig or '-'}")


@context.command("delete")
@click.argument("name")
@pass_state
def context_delete(state: State, name: str) -> None:
    """Forget a context (its token is not revoked: `spaas logout` does that)."""
    config = state.config()
    if config.contexts.pop(name, None) is None:
        raise CliError(f"no context {name!r}")
    if config.current == name:
        config.current = None
    save(config, state.path)


# -- tenants ---------------------------------------------------------------------------------

def quota_options(f: F) -> F:
    for opt, what in (("--gpus", "GPUs"), ("--memory-mb", "memory in MiB"), ("--cores", "cores"),
                      ("--max-containers", "containers")):
        f = click.option(opt, type=int, help=f"quota: {what}")(f)
    return f


def _quota(max_containers: int | None, cores: int | None, memory_mb: int | None, gpus: int | None) -> dict[str, int]:
    given = {"max_containers": max_containers, "cores": cores, "memory_mb": memory_mb, "gpus": gpus}
    return {k: v for k, v in given.items() if v is not None}


@cli.group(cls=AliasGroup)
def tenants() -> None:
    """Tenants and their quotas (creating and deleting them is for cluster admins)."""


@tenants.command("list")
@output_option
@pass_state
def tenants_list(state: State, output: str | None) -> None:
    """The tenants you may see, with usage/quota."""
    show(state.client().list_tenants(), output, kind="tenant")


@tenants.command("get")
@click.argument("name")
@output_option
@pass_state
def tenants_get(state: State, name: str, output: str | None) -> None:
    show(state.client().get_tenant(name), output)


@tenants.command("create")
@click.argument("name")
@quota_options
@output_option
@pass_state
def tenants_create(state: State, /, name: str, output: str | None, **quota: int | None) -> None:
    """Create tenant NAME (the quota's unset fields take the platform's defaults)."""
    q = _quota(**quota)
    show(state.client().create_tenant(name, q or None), output)


@tenants.command("quota")
@click.argument("name")
@quota_options
@output_option
@pass_state
def tenants_quota(state: State, /, name: str, output: str | None, **quota: int | None) -> None:
    """Replace tenant NAME's quota (unset fields take the defaults)."""
    show(state.client().set_quota(name, _quota(**quota)), output)


@tenants.command("delete")
@click.argument("name")
@pass_state
def tenants_delete(state: State, name: str) -> None:
    """Delete a tenant that has no SIGs left."""
    state.client().delete_tenant(name)
    note(f"tenant {name} deleted")


# -- SIGs ------------------------------------------------------------------------------------

@cli.group(cls=AliasGroup)
def sigs() -> None:
    """Spark instance groups: create from a YAML/JSON spec, wait until READY, update, delete."""


@sigs.command("list")
@tenant_option
@output_option
@pass_state
def sigs_list(state: State, tenant: str | None, output: str | None) -> None:
    show(state.client().list_sigs(state.tenant(tenant)), output, kind="sig")


@sigs.command("get")
@click.argument("sig")
@tenant_option
@output_option
@pass_state
def sigs_get(state: State, sig: str, tenant: str | None, output: str | None) -> None:
    show(state.client().get_sig(state.tenant(tenant), sig), output)


def _wait_ready(client: Client, tenant: str, sig: str, timeout: float) -> SigView:
    with PhaseProgress(f"sig {tenant}/{sig}", SIG_STEPS) as progress:
        def seen(view: SigView) -> None:
            st = view["status"]
            workers = st.get("workers") or {}
            detail = f"workers {workers.get('ready', 0)}/{workers.get('desired', 0)}" \
                if st.get("phase") in ("DEPLOYING", "READY", "UPDATING") else (st.get("reason") or "")
            progress.update(str(st.get("phase")), detail)
        try:
            return client.wait_ready(tenant, sig, timeout, on_poll=seen)
        except SigFailed as exc:
            raise CliError(str(exc)) from None
        except TimeoutError as exc:
            raise CliError(str(exc)) from None


def wait_options(f: F) -> F:
    f = click.option("--timeout", type=float, default=1800.0, show_default=True, help="seconds to wait")(f)
    return click.option("--wait", is_flag=True, help="wait until the SIG is READY")(f)


@sigs.command("create")
@click.option("-f", "--file", "path", required=True, help="the SIG spec, YAML or JSON ('-' for stdin)")
@tenant_option
@wait_options
@output_option
@pass_state
def sigs_create(state: State, path: str, tenant: str | None, wait: bool, timeout: float, output: str | None) -> None:
    """Create a SIG from a spec file (fields of the API's SigSpec: name, spark_version, spark_conf, ...)."""
    client, t = state.client(), state.tenant(tenant)
    view = client.create_sig(t, load_spec(path))
    if wait:
        view = _wait_ready(client, t, view["name"], timeout)
    show(view, output)


@sigs.command("update")
@click.argument("sig")
@click.option("-f", "--file", "path", required=True, help="the whole new spec, YAML or JSON ('-' for stdin)")
@tenant_option
@wait_options
@output_option
@pass_state
def sigs_update(state: State, sig: str, path: str, tenant: str | None, wait: bool, timeout: float,
                output: str | None) -> None:
    """Replace a SIG's spec; a changed spec gets the next generation and is rolled out."""
    client, t = state.client(), state.tenant(tenant)
    view = client.update_sig(t, sig, load_spec(path))
    if wait:
        view = _wait_ready(client, t, sig, timeout)
    show(view, output)


@sigs.command("wait")
@click.argument("sig")
@tenant_option
@click.option("--timeout", type=float, default=1800.0, show_default=True, help="seconds to wait")
@output_option
@pass_state
def sigs_wait(state: State, sig: str, tenant: str | None, timeout: float, output: str | None) -> None:
    """Wait until the SIG is READY at its current generation (exit 1 if it FAILED or the time ran out)."""
    view = _wait_ready(state.client(), state.tenant(tenant), sig, timeout)
    if output:
        show(view, output)


@sigs.command("delete")
@click.argument("sig")
@tenant_option
@pass_state
def sigs_delete(state: State, sig: str, tenant: str | None) -> None:
    """Delete a SIG (its containers, applications and files go with it)."""
    t = state.tenant(tenant)
    state.client().delete_sig(t, sig)
    note(f"sig {t}/{sig}: deletion requested")


def _scaling(state: State, sig: str, tenant: str | None, limit: int, output: str | None) -> None:
    view = state.client().scaling(state.tenant(tenant), sig, limit=limit)
    if output:
        show(view, output)
        return
    w, p = view["workers"], view["policy"]
    click.echo(f"phase {view['phase']}  workers {w.get('ready', 0)}/{w.get('desired', 0)} "
               f"(min {p.get('min_workers')}, max {p.get('max_workers')}, unit {p.get('allocation_unit')})")
    if view.get("demand"):
        click.echo("demand: " + ", ".join(f"{k}={v}" for k, v in (view["demand"] or {}).items()))
    show(view["decisions"], "table", kind="decision")


@sigs.command("scaling")
@click.argument("sig")
@tenant_option
@click.option("--limit", type=int, default=20, show_default=True, help="how many decisions")
@output_option
@pass_state
def sigs_scaling(state: State, sig: str, tenant: str | None, limit: int, output: str | None) -> None:
    """The SIG's scaling policy, workers, demand and latest decisions with their reasons."""
    _scaling(state, sig, tenant, limit, output)


@cli.command("scaling")
@click.argument("sig")
@tenant_option
@click.option("--limit", type=int, default=20, show_default=True, help="how many decisions")
@output_option
@pass_state
def scaling(state: State, sig: str, tenant: str | None, limit: int, output: str | None) -> None:
    """Same as `spaas sig scaling`."""
    _scaling(state, sig, tenant, limit, output)


@sigs.command("livy-url")
@click.argument("sig")
@tenant_option
@pass_state
def sigs_livy_url(state: State, sig: str, tenant: str | None) -> None:
    """The SIG's Livy-compatible endpoint (for sparkmagic, pylivy, Airflow)."""
    click.echo(state.client().livy_url(state.tenant(tenant), sig))


# -- builds and files ------------------------------------------------------------------------

@cli.group(cls=AliasGroup)
def build() -> None:
    """A SIG's build: its state and its log."""


@build.command("status")
@click.argument("sig")
@tenant_option
@output_option
@pass_state
def build_status(state: State, sig: str, tenant: str | None, output: str | None) -> None:
    show(state.client().build_status(state.tenant(tenant), sig), output)


def _print_lines(lines: Iterator[str]) -> None:
    for line in lines:
        click.echo(line)
        sys.stdout.flush()


@build.command("log")
@click.argument("sig")
@tenant_option
@click.option("-f", "--follow", is_flag=True, help="keep printing until the build is over")
@click.option("--generation", type=int, help="the build of this generation (default: the current one)")
@pass_state
def build_log(state: State, sig: str, tenant: str | None, follow: bool, generation: int | None) -> None:
    """The build's output."""
    client, t = state.client(), state.tenant(tenant)
    if follow:
        _print_lines(client.follow_build_log(t, sig, generation=generation))
        note(f"build of {t}/{sig}: {client.build_status(t, sig).get('state')}")
        return
    page = client.build_log(t, sig, generation=generation, size=10_000)
    _print_lines(iter(page.get("key_log") or page.get("log") or []))


@cli.group(cls=AliasGroup)
def files() -> None:
    """Files in a SIG's storage (what applications run): upload, list, delete."""


@files.command("upload")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@sig_option
@tenant_option
@click.option("--name", help="store under this name (default: the file's)")
@output_option
@pass_state
def files_upload(state: State, path: str, sig: str | None, tenant: str | None, name: str | None,
                 output: str | None) -> None:
    """Upload PATH; the answer's `path` (files/NAME) is what `file` and `pyFiles` of an application name."""
    show(state.client().upload_file(state.tenant(tenant), state.sig(sig), path, name=name), output)


@files.command("list")
@sig_option
@tenant_option
@output_option
@pass_state
def files_list(state: State, sig: str | None, tenant: str | None, output: str | None) -> None:
    show(state.client().list_files(state.tenant(tenant), state.sig(sig)), output, kind="file")


@files.command("delete")
@click.argument("name")
@sig_option
@tenant_option
@pass_state
def files_delete(state: State, name: str, sig: str | None, tenant: str | None) -> None:
    """Delete files/NAME from the SIG's storage."""
    t, s = state.tenant(tenant), state.sig(sig)
    state.client().delete_file(t, s, name)
    note(f"{t}/{s}: files/{name.removeprefix('files/')} deleted")


# -- applications ----------------------------------------------------------------------------

@cli.group(cls=AliasGroup)
def apps() -> None:
    """Batch applications: list, inspect, read or follow the driver log, wait, kill."""


def _find_app(client: Client, tenant: str, sig: str | None, app_id: str) -> str:
    """The SIG holding APP_ID: the given one, else the one among the tenant's SIGs that has it."""
    if sig:
        return sig
    for view in client.list_sigs(tenant):
        try:
            client.get_app(tenant, view["name"], app_id)
            return view["name"]
        except ApiError as exc:
            if exc.status != 404:
                raise
    raise CliError(f"no application {app_id!r} in the SIGs of tenant {tenant!r} you may see")


@apps.command("list")
@sig_option
@tenant_option
@output_option
@pass_state
def apps_list(state: State, sig: str | None, tenant: str | None, output: str | None) -> None:
    """Applications of one SIG (-s), else of every SIG of the tenant."""
    client, t = state.client(), state.tenant(tenant)
    ctx = state.context()
    sig = sig or (ctx.sig if ctx else None)
    sig_names = [sig] if sig else [v["name"] for v in client.list_sigs(t)]
    rows: list[dict[str, Any]] = []
    for name in sig_names:
        rows += [dict(a, sig=name) for a in client.list_apps(t, name)]
    show(rows, output, kind="app")


@apps.command("get")
@click.argument("app_id")
@sig_option
@tenant_option
@output_option
@pass_state
def apps_get(state: State, app_id: str, sig: str | None, tenant: str | None, output: str | None) -> None:
    client, t = state.client(), state.tenant(tenant)
    show(client.get_app(t, _find_app(client, t, sig, app_id), app_id), output)


@apps.command("log")
@click.argument("app_id")
@sig_option
@tenant_option
@click.option("-f", "--follow", is_flag=True, help="keep printing until the application is over")
@pass_state
def apps_log(state: State, app_id: str, sig: str | None, tenant: str | None, follow: bool) -> None:
    """The driver's output (stdout and stderr)."""
    client, t = state.client(), state.tenant(tenant)
    s = _find_app(client, t, sig, app_id)
    if follow:
        _print_lines(client.follow_app_log(t, s, app_id))
    else:
        _print_lines(iter(client.app_log(t, s, app_id, size=100_000).get("log") or []))


def _wait_app(client: Client, tenant: str, sig: str, app_id: str, timeout: float) -> int:
    with PhaseProgress(f"app {app_id}", APP_STEPS) as progress:
        try:
            view = client.wait_finished(tenant, sig, app_id, timeout,
                                        on_poll=lambda v: progress.update(str(v.get("state")), v.get("reason") or ""))
        except TimeoutError as exc:
            note(f"error: {exc}")
            return EXIT_TIMEOUT
    return _report(view)


def _report(view: AppView) -> int:
    code = app_exit_code(view)
    why = f" ({view.get('reason')}: {view.get('message')})" if view.get("reason") else ""
    note(f"application {view.get('id')}: {view.get('state')}{why}; exit code {code}")
    return code


@apps.command("wait")
@click.argument("app_id")
@sig_option
@tenant_option
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds to wait")
@pass_state
def apps_wait(state: State, app_id: str, sig: str | None, tenant: str | None, timeout: float) -> int:
    """Wait until the application is over; exit with its outcome (0 FINISHED, see `spaas submit`)."""
    client, t = state.client(), state.tenant(tenant)
    return _wait_app(client, t, _find_app(client, t, sig, app_id), app_id, timeout)


@apps.command("kill")
@click.argument("app_id")
@sig_option
@tenant_option
@click.option("--wait", is_flag=True, help="wait until it is KILLED (or over)")
@click.option("--timeout", type=float, default=300.0, show_default=True, help="seconds to wait")
@pass_state
def apps_kill(state: State, app_id: str, sig: str | None, tenant: str | None, wait: bool, timeout: float) -> int:
    """Kill a running application (one already over is left as it is)."""
    client, t = state.client(), state.tenant(tenant)
    s = _find_app(client, t, sig, app_id)
    view = client.kill_app(t, s, app_id)
    note(f"application {app_id}: kill requested (now {view.get('state')})")
    if wait:
        code = _wait_app(client, t, s, app_id, timeout)
        return EXIT_TIMEOUT if code == EXIT_TIMEOUT else 0
    return 0


@cli.command()
@click.argument("file", type=click.Path(exists=True, dir_okay=False))
@click.argument("args", nargs=-1, type=click.UNPROCESSED)
@sig_option
@tenant_option
@click.option("--name", help="the application's name")
@click.option("--class-name", help="main class (JVM applications)")
@click.option("--conf", multiple=True, metavar="KEY=VALUE", help="Spark conf of this application (repeatable)")
@click.option("--py-file", "py_files", multiple=True, type=click.Path(exists=True, dir_okay=False),
              help="a local .py/.zip uploaded beside FILE and put on the PYTHONPATH (repeatable)")
@click.option("--driver-memory")
@click.option("--executor-memory")
@click.option("--executor-cores", type=int)
@click.option("--num-executors", type=int)
@click.option("--idempotency-key", help="retry-safe submission: the API runs one application per key")
@click.option("--no-follow", is_flag=True, help="print the application id and return at once")
@click.option("--timeout", type=float, default=3600.0, show_default=True, help="seconds to follow it")
@pass_state
def submit(state: State, file: str, args: tuple[str, ...], sig: str | None, tenant: str | None, name: str | None,
           class_name: str | None, conf: tuple[str, ...], py_files: tuple[str, ...], driver_memory: str | None,
           executor_memory: str | None, executor_cores: int | None, num_executors: int | None,
           idempotency_key: str | None, no_follow: bool, timeout: float) -> int:
    """Upload FILE to the SIG, run it with ARGS (after `--`), print its driver log as it runs and
    exit with its outcome: 0 FINISHED; FAILED: the driver's exit code (1-123), else 1; KILLED 137;
    124 if it was still running after --timeout."""
    client, t, s = state.client(), state.tenant(tenant), state.sig(sig)
    confs: dict[str, str] = {}
    for item in conf:
        key, eq, value = item.partition("=")
        if not eq or not key:
            raise click.BadParameter(f"{item!r} is not KEY=VALUE", param_hint="--conf")
        confs[key] = value
    path = client.upload_file(t, s, file)["path"]
    request: dict[str, Any] = {"file": path, "args": list(args)}
    if py_files:
        request["pyFiles"] = [client.upload_file(t, s, p)["path"] for p in py_files]
    optional: tuple[tuple[str, str | int | None], ...] = (
        ("name", name), ("className", class_name), ("driverMemory", driver_memory),
        ("executorMemory", executor_memory), ("executorCores", executor_cores), ("numExecutors", num_executors))
    for field_name, field_value in optional:
        if field_value is not None:
            request[field_name] = field_value
    if confs:
        request["conf"] = confs
    app_id = str(client.submit_app(t, s, request, idempotency_key=idempotency_key)["id"])
    if no_follow:
        click.echo(app_id)
        return 0
    note(f"application {app_id} submitted to {t}/{s} (spaas app kill {app_id} -t {t} -s {s} ends it)")
    try:
        _print_lines(client.follow_app_log(t, s, app_id, timeout=timeout))
    except TimeoutError:
        note(f"error: application {app_id} still running after {timeout:.0f}s")
        return EXIT_TIMEOUT
    return _report(client.wait_finished(t, s, app_id, 60.0))


# -- members and tokens ----------------------------------------------------------------------

@cli.group(cls=AliasGroup)
def members() -> None:
    """Roles of users and LDAP groups in a tenant (consumer_admin, sig_configure, user)."""


@members.command("list")
@tenant_option
@output_option
@pass_state
def members_list(state: State, tenant: str | None, output: str | None) -> None:
    show(state.client().list_members(state.tenant(tenant)), output, kind="member")


@members.command("grant")
@click.argument("name")
@click.argument("roles", nargs=-1, required=True, type=click.Choice(["consumer_admin", "sig_configure", "user"]))
@click.option("--group", is_flag=True, help="NAME is an LDAP group")
@tenant_option
@output_option
@pass_state
def members_grant(state: State, name: str, roles: tuple[str, ...], group: bool, tenant: str | None,
                  output: str | None) -> None:
    """Give NAME these ROLES in the tenant (replacing the roles it had)."""
    show(state.client().put_member(state.tenant(tenant), name, list(roles), kind="group" if group else "user"), output)


@members.command("revoke")
@click.argument("name")
@click.option("--group", is_flag=True, help="NAME is an LDAP group")
@tenant_option
@pass_state
def members_revoke(state: State, name: str, group: bool, tenant: str | None) -> None:
    """Remove NAME's roles in the tenant."""
    t = state.tenant(tenant)
    state.client().delete_member(t, name, kind="group" if group else "user")
    note(f"{'group' if group else 'user'} {name} is no longer a member of {t}")


@cli.group(cls=AliasGroup)
def tokens() -> None:
    """Personal API tokens for scripts (made with, and never outliving, your login)."""


@tokens.command("list")
@output_option
@pass_state
def tokens_list(state: State, output: str | None) -> None:
    show(state.client().list_tokens(), output, kind="token")


@tokens.command("create")
@click.argument("name")
@click.option("--expires-in", type=int, help="seconds until it expires (default: the platform's maximum)")
@pass_state
def tokens_create(state: State, name: str, expires_in: int | None) -> None:
    """Make a token; it is printed once, on stdout, and cannot be shown again."""
    made = state.client().create_token(name, expires_in_s=expires_in)
    note(f"token {made['id']} ({name}); store it now, it is not shown again:")
    click.echo(made["token"])


@tokens.command("delete")
@click.argument("token_id")
@pass_state
def tokens_delete(state: State, token_id: str) -> None:
    """Revoke a token by its id."""
    state.client().delete_token(token_id)
    note(f"token {token_id} revoked")


# -- shell completion ------------------------------------------------------------------------

@cli.command()
@click.argument("shell", type=click.Choice(["bash", "zsh", "fish"]))
def completion(shell: str) -> None:
    """Print the completion script: `eval "$(spaas completion bash)"` (the `spaas` script must be on PATH)."""
    from click.shell_completion import get_completion_class

    cls = get_completion_class(shell)
    assert cls is not None
    click.echo(cls(cli, {}, "spaas", "_SPAAS_COMPLETE").source())
