"""The ``strato`` command: run the cloud in one process or one role per process."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from strato import bootstrap
from strato.config import Settings, load_settings
from strato.log import configure

if TYPE_CHECKING:
    from strato.image.client import ImageClient

app = typer.Typer(help="strato: a compact compute cloud speaking the OpenStack APIs.",
                  no_args_is_help=True, add_completion=False)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(db_app, name="db")
image_app = typer.Typer(help="Images, through the Image API (Glance v2).", no_args_is_help=True)
app.add_typer(image_app, name="image")
identity_app = typer.Typer(help="Identity (Keystone tokens).", no_args_is_help=True)
app.add_typer(identity_app, name="identity")
policy_app = typer.Typer(help="API policy: who may call which action.", no_args_is_help=True)
app.add_typer(policy_app, name="policy")

ConfigOpt = Annotated[Path | None, typer.Option("--config", "-c", help="TOML settings file.",
                                                 exists=True, dir_okay=False)]


def _settings(config: Path | None, **overrides: Any) -> Settings:
    return load_settings(config, **{k: v for k, v in overrides.items() if v is not None})


def _run_until_signalled(main: Callable[[asyncio.Event], Awaitable[None]]) -> None:
    """Run ``main(stop)`` and set ``stop`` on SIGINT/SIGTERM, for a clean shutdown."""
    async def runner() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await main(stop)

    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(runner())


async def _with_db_and_bus(settings: Settings,
                           role: Callable[..., Awaitable[None]], stop: asyncio.Event) -> None:
    from strato.rpc.transport import open_bus

    db = await bootstrap.open_database(settings)
    bus = await open_bus(settings.rpc.transport_url)
    try:
        await role(settings, db, bus, stop)
    finally:
        await bus.close()
        await db.close()


@app.command()
def up(config: ConfigOpt = None,
       driver: Annotated[str | None, typer.Option(help="Virt driver: fake or libvirt.")] = None,
       hosts: Annotated[int, typer.Option(help="Compute hosts to run (fake driver).")] = 1,
       ) -> None:
    """Run every role (api, conductor, scheduler, compute) in this process."""
    overrides: dict[str, Any] = {}
    if driver:
        overrides["compute"] = {"driver": driver}
    settings = _settings(config, **overrides)
    configure(settings.log_level, service="up")
    base = settings.compute.host
    specs = [bootstrap.ComputeSpec(base if hosts == 1 else f"{base}-{i + 1}")
             for i in range(hosts)]

    async def main(stop: asyncio.Event) -> None:
        # clouds.yaml first: a client that sees the API answer finds it already there.
        client_config = _client_config(settings) if settings.identity.admin_password else ""
        async with bootstrap.embedded(settings, specs, serve_http=True) as cloud:
            from strato.seed import seed_defaults

            await seed_defaults(cloud.db)
            typer.echo(f"strato is up: {settings.api.url}", err=True)
            if client_config:
                typer.echo(client_config, err=True)
            await stop.wait()

    _run_until_signalled(main)


async def _cli_token(settings: Settings, url: str, wait: float = 0.0) -> str:
    """The token the CLI acts with: the static admin token when one is configured (a
    test option), else the admin user's, logged in with its password. With ``wait``,
    first waits that many seconds for the API to answer: ``make run`` starts
    ``strato up`` and ``strato demo`` together."""
    if wait:
        await _wait_for_api(url, wait)
    if settings.api.admin_token:
        return settings.api.admin_token
    if not settings.identity.admin_password:
        raise typer.BadParameter("no admin password (identity.admin_password) and no "
                                 "static token (api.admin_token): cannot log in")
    from strato.client.auth import password_token
    from strato.seed import ADMIN_NAME

    return await password_token(url, user=ADMIN_NAME, password=settings.identity.admin_password,
                                project=ADMIN_NAME)


def _client_config(settings: Settings) -> str:
    """Write ``clouds.yaml`` and say how to use it."""
    from strato.clouds import client_environment, write_clouds_yaml

    path = write_clouds_yaml(settings)
    return (f"client configuration: {path} (cloud 'strato', the admin user's password); "
            f"for openstack and openstacksdk:\n{client_environment(path)}")


def _role(name: str, role: Callable[..., Awaitable[None]]) -> Callable[[Path | None], None]:
    def command(config: ConfigOpt = None) -> None:
        settings = _settings(config)
        configure(settings.log_level, service=name)
        _run_until_signalled(lambda stop: _with_db_and_bus(settings, role, stop))

    command.__doc__ = f"Run the {name} service."
    return command


app.command("api")(_role("api", bootstrap.run_api))
app.command("conductor")(_role("conductor", bootstrap.run_conductor))
app.command("scheduler")(_role("scheduler", bootstrap.run_scheduler))
app.command("dhcp-agent")(_role("dhcp-agent", bootstrap.run_dhcp_agent))


@app.command()
def compute(host: Annotated[str, typer.Option(help="This compute's host name.")],
            config: ConfigOpt = None) -> None:
    """Run a compute service for HOST (it reaches the database only via the conductor)."""
    settings = _settings(config)
    configure(settings.log_level, service=f"compute@{host}")

    async def main(stop: asyncio.Event) -> None:
        from strato.rpc.transport import open_bus

        bus = await open_bus(settings.rpc.transport_url)
        try:
            await bootstrap.run_compute(settings, bus, bootstrap.ComputeSpec(host), stop)
        finally:
            await bus.close()

    _run_until_signalled(main)


@db_app.command("upgrade")
def db_upgrade(config: ConfigOpt = None) -> None:
    """Create or migrate the database schema to the latest version."""
    from strato.db.migrate import upgrade

    settings = _settings(config)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    asyncio.run(upgrade(settings.database_url))
    typer.echo("database is up to date")


@app.command("bootstrap")
def bootstrap_cmd(config: ConfigOpt = None,
                  reset_admin_password: Annotated[bool, typer.Option(
                      help="Set the admin user's password to identity.admin_password even "
                      "when it already has one.")] = False) -> None:
    """Create the default flavors (m1.tiny ... m1.xlarge) and the admin project and user
    (its password identity.admin_password, when it has none yet)."""
    from strato.seed import seed_admin, seed_defaults

    settings = _settings(config)

    async def main() -> None:
        db = await bootstrap.open_database(settings, migrate=True)
        try:
            created = await seed_defaults(db)
            user, project = await seed_admin(db, password=settings.identity.admin_password,
                                             reset=reset_admin_password)
        finally:
            await db.close()
        typer.echo(f"created {created} flavor(s); admin user {user.name} ({user.id}) in "
                   f"project {project.name} ({project.id})")
        if settings.identity.admin_password:
            typer.echo(_client_config(settings))

    asyncio.run(main())


@app.command()
def demo(url: Annotated[str, typer.Option(help="API URL.")] = "http://127.0.0.1:8774",
         config: ConfigOpt = None,
         timeout: Annotated[float, typer.Option(help="Seconds to wait for ACTIVE.")] = 120,
         ) -> None:
    """Against a running strato: upload a small image, boot a server, wait for ACTIVE."""
    from strato.client import ApiClient

    settings = _settings(config)

    async def main() -> None:
        async with ApiClient(url, await _cli_token(settings, url, wait=timeout)) as client:
            await _wait_for_cloud(client, timeout)
            if await _hypervisor_type(client) == "QEMU":
                await _demo_real_vm(client, settings, url, timeout)
                return
            image = await client.create_image("demo-image", b"\0" * 1024 * 1024,
                                              disk_format="raw")
            flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
            server_id = await client.create_server("demo-server", image=image, flavor=flavor)
            typer.echo(f"created server {server_id}, waiting for ACTIVE ...")
            server = await client.wait_for_status(server_id, {"ACTIVE", "ERROR"},
                                                  timeout=timeout)
            typer.echo(f"server {server.name} ({server.id}) is {server.status} "
                       f"on host {server.host}")
            if server.status != "ACTIVE":
                raise typer.Exit(1)

    asyncio.run(main())


async def _wait_for_cloud(client: Any, timeout: float) -> None:
    """Until a compute has reported and the default flavors exist (``strato up`` seeds
    them once its computes are up)."""
    async with asyncio.timeout(timeout):
        while True:
            resp = await client.request("GET", "/v2.1/os-hypervisors")
            if resp.json()["hypervisors"] and await client.flavors():
                return
            await asyncio.sleep(0.3)


async def _hypervisor_type(client: Any) -> str | None:
    resp = await client.request("GET", "/v2.1/os-hypervisors/detail")
    types = {h["hypervisor_type"] for h in resp.json()["hypervisors"]}
    return "QEMU" if "QEMU" in types else next(iter(types), None)


DEMO_NETWORK = "demo-net"
DEMO_CIDR = "10.99.0.0/24"


async def _demo_network(client: Any) -> str:
    """The demo's network (``demo-net``, 10.99.0.0/24), created on first use. Guests on
    it reach each other and the DHCP agent's namespace, never the host."""
    found = (await client.request("GET", "/networking/v2.0/networks",
                                  params={"name": DEMO_NETWORK})).json()["networks"]
    if found:
        return str(found[0]["id"])
    net = (await client.request("POST", "/networking/v2.0/networks", json={
        "network": {"name": DEMO_NETWORK}})).json()["network"]
    await client.request("POST", "/networking/v2.0/subnets", json={"subnet": {
        "network_id": net["id"], "cidr": DEMO_CIDR, "ip_version": 4,
        "name": f"{DEMO_NETWORK}-v4"}})
    typer.echo(f"created network {DEMO_NETWORK} ({DEMO_CIDR})")
    return str(net["id"])


async def _demo_real_vm(client: Any, settings: Settings, url: str, timeout: float) -> None:
    """Boot the tiny guest (built and imported on first use) with a config drive and a
    user-data script, and show what it printed on its console."""
    import base64

    from strato.image.client import ImageClient
    from strato.tinyguest import build_tiny_guest
    from strato.tinyguest.publish import find_tiny_image, publish_tiny_guest

    async with ImageClient(url, await _cli_token(settings, url)) as images:
        image = await find_tiny_image(images)
        if image is None:
            typer.echo("building the tiny guest from Debian packages (once) ...")
            guest = await build_tiny_guest(settings.data_dir / "tiny-guest")
            image = (await publish_tiny_guest(images, guest)).disk
            typer.echo(f"imported it as image 'tiny' ({image})")
    flavor = next(f["id"] for f in await client.flavors() if f["name"] == "m1.tiny")
    network = await _demo_network(client)
    script = "#!/bin/sh\necho \"hello from user data on $(hostname)\"\n"
    server_id = await client.create_server(
        "demo-vm", image=image, flavor=flavor, config_drive=True,
        networks=[{"uuid": network}],
        user_data=base64.b64encode(script.encode()).decode())
    typer.echo(f"created server {server_id} (a real VM), waiting for ACTIVE ...")
    server = await client.wait_for_status(server_id, {"ACTIVE", "ERROR"}, timeout=timeout)
    typer.echo(f"server {server.name} ({server.id}) is {server.status} on host {server.host}")
    if server.status != "ACTIVE":
        raise typer.Exit(1)
    ports = (await client.request("GET", "/networking/v2.0/ports",
                                  params={"device_id": server_id})).json()["ports"]
    for port in ports:
        addresses = ", ".join(ip["ip_address"] for ip in port["fixed_ips"])
        typer.echo(f"its port on {DEMO_NETWORK}: {port['mac_address']} {addresses} "
                   f"({port['status']}); the guest should lease that address by DHCP")
    typer.echo("its console:")
    seen = 0
    async with asyncio.timeout(timeout):
        while True:
            resp = await client.request("POST", f"/v2.1/servers/{server_id}/action",
                                        json={"os-getConsoleOutput": {}})
            lines = [line for line in resp.json()["output"].splitlines()
                     if line.startswith("strato-guest:") or "hello from user data" in line]
            for line in lines[seen:]:
                typer.echo(f"  {line}")
            seen = len(lines)
            if any("strato-guest: ready" in line for line in lines):
                return
            await asyncio.sleep(0.5)


@image_app.command("build-tiny")
def build_tiny(
        output: Annotated[Path | None, typer.Option(
            help="Where to write the images (default: <data_dir>/tiny-guest).")] = None,
        upload: Annotated[bool, typer.Option(
            "--import/--no-import", help="Also upload them to the image API.")] = False,
        url: Annotated[str | None, typer.Option(
            help="API URL (default: api.public_url, else http://<api.listen>).")] = None,
        config: ConfigOpt = None,
        ) -> None:
    """Build the tiny guest from Debian's cloud kernel and busybox (no root needed): a
    bootable qcow2 disk, and the same kernel and initramfs as aki/ari images."""
    from strato.image.client import ImageClient
    from strato.tinyguest import build_tiny_guest
    from strato.tinyguest.publish import publish_tiny_guest

    settings = _settings(config)
    target = output or settings.data_dir / "tiny-guest"
    api_url = url or settings.api.url

    async def main() -> None:
        guest = await build_tiny_guest(target)
        typer.echo(f"disk    {guest.disk}\nkernel  {guest.kernel}\ninitrd  {guest.initrd}"
                   f"\nversion {guest.kernel_version}\ncmdline {guest.cmdline}")
        if upload:
            async with ImageClient(api_url, await _cli_token(settings, api_url)) as client:
                ids = await publish_tiny_guest(client, guest)
            typer.echo(f"images: tiny={ids.disk} tiny-kernel={ids.kernel} "
                       f"tiny-ramdisk={ids.ramdisk} tiny-kernel-boot={ids.kernel_boot}")

    asyncio.run(main())


@image_app.command("import")
def image_import(
        file: Annotated[Path, typer.Argument(help="The image file to upload.", exists=True,
                                             dir_okay=False, readable=True)],
        name: Annotated[str, typer.Option(help="The image's name.")],
        url: Annotated[str | None, typer.Option(
            help="API URL (default: api.public_url, else http://<api.listen>).")] = None,
        disk_format: Annotated[str | None, typer.Option(
            help="raw, qcow2, ... (default: detected from the file's header).")] = None,
        container_format: Annotated[str, typer.Option(help="Container format.")] = "bare",
        public: Annotated[bool, typer.Option("--public", help="Visible to every project.")
                          ] = False,
        min_disk: Annotated[int | None, typer.Option(help="Smallest root disk, GiB.")] = None,
        min_ram: Annotated[int | None, typer.Option(help="Smallest RAM, MiB.")] = None,
        prop: Annotated[list[str] | None, typer.Option(
            "--property", help="Extra property KEY=VALUE (repeatable).")] = None,
        config: ConfigOpt = None,
        ) -> None:
    """Upload FILE as a new image (streamed) with the admin token; print its record."""
    from strato.image.client import ImageClient

    settings = _settings(config)
    fields: dict[str, Any] = {
        "name": name, "container_format": container_format,
        "disk_format": disk_format or _detect_format(file), **_properties(prop or []),
        **({"visibility": "public"} if public else {}),
        **{k: v for k, v in {"min_disk": min_disk, "min_ram": min_ram}.items()
           if v is not None}}
    api_url = url or settings.api.url

    async def main() -> dict[str, Any]:
        async with ImageClient(api_url, await _cli_token(settings, api_url)) as client:
            return await _create_and_upload(client, fields, file)

    image = asyncio.run(main())
    for key in ("id", "name", "status", "disk_format", "size", "virtual_size", "checksum"):
        typer.echo(f"{key:<13}{image.get(key)}")


def _detect_format(file: Path) -> str:
    """The disk format the header of ``file`` shows. ``Invalid`` for a header that is
    corrupt or refers to another file (a backing file, an external data file): the
    Image API refuses those, so refusing here saves the upload."""
    from strato.image.inspect import HEADER_BYTES, check_safe, inspect_header

    with file.open("rb") as handle:
        info = inspect_header(handle.read(HEADER_BYTES), file.stat().st_size)
    check_safe(info, info.format)
    return info.format


def _properties(pairs: list[str]) -> dict[str, str]:
    props: dict[str, str] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise typer.BadParameter(f"{pair!r} is not KEY=VALUE", param_hint="--property")
        props[key] = value
    return props


async def _create_and_upload(client: ImageClient, fields: dict[str, Any],
                             file: Path) -> dict[str, Any]:
    """Create the image and stream ``file`` into it; a failed upload deletes the image
    it created, so no queued or killed record is left behind."""
    image = await client.create(**fields)
    try:
        await client.upload(image["id"], file)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.delete(image["id"])
        raise
    return await client.get(image["id"])


async def _wait_for_api(url: str, timeout: float = 120.0) -> None:
    """Until the API at ``url`` answers its (unauthenticated) version document."""
    import httpx

    async with httpx.AsyncClient(base_url=url, timeout=5.0) as http, \
            asyncio.timeout(timeout):
        while True:
            try:
                if (await http.get("/")).status_code < 500:
                    return
            except httpx.TransportError:
                pass
            await asyncio.sleep(0.2)


@identity_app.command("rotate-keys")
def identity_rotate_keys(config: ConfigOpt = None) -> None:
    """Rotate the Fernet keys: the staged key becomes primary, a new key is staged, and
    the oldest beyond identity.max_active_keys are dropped (their tokens stop working).
    Copy the key directory to every other API host afterwards."""
    from strato.identity.fernet import KeyRepository

    settings = _settings(config)
    keys = KeyRepository(settings.fernet_key_repository, settings.identity.max_active_keys)
    keys.ensure()
    primary = keys.rotate()
    typer.echo(f"rotated {keys.path}: primary key is now {primary}")


@policy_app.command("sample")
def policy_sample() -> None:
    """Print every default rule with its description, commented out: a policy file to
    start from (uncomment and change the rules to override)."""
    from strato.api.policies import default_policy

    typer.echo(default_policy().sample(), nl=False)


@policy_app.command("check")
def policy_check(
        file: Annotated[Path, typer.Option("--file", help="The YAML or JSON policy file.")],
        ) -> None:
    """Load FILE as identity.policy_file would be loaded: print how many rules it changes,
    or why the API would refuse to start with it (exit status 1)."""
    from strato.api.policies import load_policy
    from strato.domain.errors import Invalid

    try:
        policy = load_policy(file)
    except Invalid as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    changed = sum(policy.rules[name] != rule.check for name, rule in policy.defaults.items())
    typer.echo(f"ok: {changed} rules overridden")


def main() -> None:
    """Entry point: a domain error (bad settings, unreachable database) is one clear line
    and exit status 2, not a traceback."""
    from pydantic import ValidationError

    from strato.domain.errors import StratoError

    try:
        app()
    except (StratoError, ValidationError) as exc:
        typer.echo(f"strato: error: {exc}", err=True)
        raise SystemExit(2) from None
