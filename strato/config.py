"""Settings: a TOML file plus ``STRATO_*`` environment variables, read once.

Only ``bootstrap.py`` and ``cli.py`` read :class:`Settings`; each component receives just
its own section. Environment variables override the file; nested fields use ``__``
(``STRATO_DB__URL``, ``STRATO_COMPUTE__DRIVER``). The file is ``$STRATO_CONFIG`` or the
``--config`` option of the CLI.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, Field
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from strato.domain.errors import Invalid

__all__ = ["ApiSettings", "ComputeSettings", "DbSettings", "FakeDriverSettings",
           "IdentitySettings", "ImageSettings", "LibvirtSettings", "NetworkSettings", "RpcSettings",
           "SchedulerSettings", "Settings",
           "load_settings"]


class ImageSettings(BaseModel, frozen=True):
    """The image service's limits (``api.image``): it runs inside the API process."""

    image_size_cap: int = Field(
        1099511627776, gt=0, description="Most bytes one image may hold (Glance's "
        "image_size_cap, default 1 TiB); a larger upload is cut off with 413 and the image "
        "is queued again, with no data kept.")
    image_size_total: int = Field(
        -1, ge=-1, description="Per-project image storage quota in MiB (Glance's unified "
        "limit image_size_total): the sizes of a project's images together; -1: unlimited.")
    project_image_size_total: dict[str, int] = Field(
        {}, description="image_size_total (MiB, -1 unlimited) for particular projects, "
        "by project id, over image_size_total.")

    def size_total_mib(self, project_id: str) -> int:
        """The project's image storage quota in MiB (-1: unlimited)."""
        return self.project_image_size_total.get(project_id, self.image_size_total)


class ApiSettings(BaseModel, frozen=True):
    listen: str = Field("127.0.0.1:8774", description="host:port the REST API listens on.")
    admin_token: str | None = Field(
        None, description="A static token that acts as the admin user, beside Keystone's "
        "tokens. A test option: unset (the default), only tokens from the Identity API "
        "are accepted.")
    service_token: str | None = Field(
        None, description="Static token services use between hosts (a compute "
        "downloading images from the image API); it acts with the service role only, which "
        "may read and download images and nothing else. "
        "Default: a random secret made once in <data_dir>/service-token (mode 0600). "
        "Computes on other hosts need the same value: set it here, or share that file.")
    public_url: str | None = Field(None, description="URL clients use to reach the API; "
                                   "defaults to http://<listen>.")
    max_metadata_items: int = Field(128, description="Most metadata keys per server "
                                    "(Nova's metadata_items quota).")
    reclaim_instance_interval: float = Field(
        0.0, description="Seconds a deleted server stays SOFT_DELETED (powered off, "
        "restorable) before its compute reclaims it; 0 deletes at once (Nova's "
        "reclaim_instance_interval).")
    max_request_body_size: int = Field(
        114688, gt=0, description="Most bytes of a request body, on every route but image "
        "data uploads (Nova's osapi_max_request_body_size, 112 KiB); a larger body is "
        "refused with 413 before the route reads it.")
    max_form_body_size: int = Field(
        1048576, gt=0, description="Most bytes of a dashboard form (a launch form carries "
        "up to 64 KiB of user data, which URL-encoding may triple).")
    max_upload_body_size: int = Field(
        1099511627776, gt=0, description="Most bytes of an image data upload "
        "(PUT /image/v2/images/{id}/file and the dashboard's upload), which streams to "
        "the image store; default 1 TiB (Glance's image_size_cap).")
    image: ImageSettings = Field(default_factory=ImageSettings,
                                 description="The image service's limits.")

    @property
    def url(self) -> str:
        """Where clients reach the API: ``public_url``, else ``http://<listen>``, without
        a trailing slash."""
        return (self.public_url or f"http://{self.listen}").rstrip("/")


class IdentitySettings(BaseModel, frozen=True):
    admin_password: str | None = Field(
        "strato-admin", description="Password of the bootstrap admin user for Keystone "
        "password authentication, set when the admin user is created (or has no password "
        "yet), as keystone-manage bootstrap does: a password changed later through the "
        "Identity API stays; `strato bootstrap --reset-admin-password` sets this one "
        "again. Unset: no password login.")
    token_expiration: int = Field(3600, gt=0, description="Seconds a Fernet token lasts.")
    max_active_keys: int = Field(3, ge=2, description="Fernet keys kept by "
                                 "`strato identity rotate-keys` (primary, staged and "
                                 "secondaries): tokens outlive this many rotations minus 2.")
    key_repository: Path | None = Field(None, description="The Fernet key directory. "
                                        "Default: <data_dir>/fernet-keys.")
    policy_file: Path | None = Field(None, description="A YAML or JSON file of policy "
                                     "rules that override the defaults (`strato policy "
                                     "sample` prints them all). Default: none.")
    lockout_failure_attempts: int = Field(
        6, ge=0, description="Failed password logins of one user (each within "
        "lockout_duration of the one before) after which its password logins are refused, "
        "even with the right password, for lockout_duration (Keystone's "
        "security_compliance option of the same name); a success starts the count again. "
        "0: no lockout.")
    lockout_duration: int = Field(
        1800, gt=0, description="Seconds a locked user stays locked after its last failed "
        "password login (Keystone's security_compliance lockout_duration).")
    failed_login_source_limit: int = Field(
        30, ge=0, description="Failed password logins (any user name, known or not) from "
        "one client address per failed_login_source_window, past which that address's "
        "password logins are answered 429 with Retry-After until the window ends. 0: no "
        "limit.")
    failed_login_source_window: int = Field(
        300, gt=0, description="Seconds over which failed_login_source_limit counts.")


class DbSettings(BaseModel, frozen=True):
    url: str | None = Field(None, description="SQLAlchemy URL. Default: a SQLite file "
                            "strato.db in the data directory (WAL mode). For PostgreSQL: "
                            "postgresql+asyncpg://user@host/dbname")


class RpcSettings(BaseModel, frozen=True):
    transport_url: str = Field("memory://", description="memory:// keeps the bus inside "
                               "one process (embedded mode); amqp://guest:guest@127.0.0.1:5672/"
                               " uses RabbitMQ (distributed mode). A path names the vhost.")
    call_timeout: float = Field(60.0, description="Seconds a call waits for its answer.")


class FakeDriverSettings(BaseModel, frozen=True):
    nodes: int = Field(1, description="Nodes per compute host (scale tests).")
    vcpus: int = 16
    memory_mb: int = 32768
    disk_gb: int = 500
    spawn_delay: float = Field(0.0, description="Seconds each spawn takes.")
    console_delay: float = Field(0.0, description="Seconds after its spawn before a guest "
                                 "writes its first console line (its boot).")
    fail_names: tuple[str, ...] = Field((), description="Instance names whose spawn fails.")
    fail_every: int = Field(0, description="Fail every Nth spawn (0: never).")
    fail_retryable: bool = Field(True, description="Injected failures may be rescheduled.")
    state_dir: str = Field("", description="Keep each host's fake guests in "
                           "<state_dir>/<host>.json, so they outlive the compute process as "
                           "a hypervisor's would (fault tests); empty: in memory only.")


class LibvirtSettings(BaseModel, frozen=True):
    uri: str = Field("qemu:///system", description="libvirt connection URI.")
    virt_type: Literal["auto", "kvm", "qemu"] = Field(
        "auto", description="kvm, qemu (TCG emulation) or auto: KVM when a test guest "
        "proves it works on this host, else TCG.")
    kvm_probe_timeout: float = Field(
        2.0, description="Seconds the KVM test guest may take; a working KVM runs it in "
        "about 0.1 s, a broken one hangs or crawls.")
    instances_path: Path | None = Field(
        None, description="Instance directories and the _base image cache. Default: "
        "<data_dir>/instances. QEMU (user libvirt-qemu) must be able to reach it.")
    domain_prefix: str = Field("strato-", description="Domains are named <prefix><uuid>; "
                               "only domains with this prefix are this compute's.")
    machine_type: str = Field("pc", description="QEMU machine type (pc attaches the config "
                              "drive as an IDE cdrom, which every Linux kernel can read).")
    images_type: Literal["qcow2", "raw"] = Field(
        "qcow2", description="Instance disks: qcow2 overlays on the cached base, or raw copies.")
    force_raw_images: bool = Field(False, description="Convert cached bases to raw.")
    preallocate_images: bool = Field(False, description="Preallocate instance disks.")
    force_config_drive: bool = Field(False, description="Attach a config drive to every "
                                     "instance, asked for or not.")
    config_drive_bus: Literal["ide", "virtio"] = Field(
        "ide", description="ide: a cdrom (machine type pc); virtio: a read-only disk.")
    spawn_timeout: float = Field(120.0, description="Seconds a domain may take to run "
                                 "after it was started; then the build is rescheduled.")
    clean_shutdown_timeout: float = Field(60.0, description="Seconds a soft reboot or stop "
                                          "waits for the guest's ACPI shutdown before "
                                          "forcing it.")
    boot_slots: int = Field(0, description="Guests that may boot at once. 0: unlimited "
                            "under KVM, one per host CPU under TCG (a booting TCG guest keeps "
                            "a core busy).")
    boot_cpu_seconds: float = Field(5.0, description="How long a booting TCG guest holds "
                                    "its boot slot.")
    reserved_host_memory_mb: int = Field(512, description="Memory kept for the host.")
    instance_overhead_mb: int = Field(64, description="Memory each guest's QEMU process "
                                      "needs beyond the flavor; the compute claims it too.")
    image_cache_max_age: float = Field(86400.0, description="Seconds an unused base image "
                                       "stays cached.")
    image_cache_interval: float = Field(2400.0, description="Seconds between cache sweeps "
                                        "(0: never).")
    kernel_cmdline: str = Field("console=ttyS0 quiet", description="Kernel command line "
                                "for direct kernel boot, unless the image sets os_command_line.")


class ComputeSettings(BaseModel, frozen=True):
    host: str = Field(default_factory=socket.gethostname,
                      description="This compute's host name (unique in the cloud).")
    driver: Literal["auto", "fake", "libvirt"] = Field(
        "auto", description="Virt driver. auto: libvirt when libvirtd answers on this host, "
        "else fake (with a warning).")
    max_concurrent_builds: int = Field(10, description="Builds one host runs at once; "
                                       "more wait (Nova's max_concurrent_builds).")
    report_interval: float = Field(10.0, description="Seconds between capacity reports "
                                   "and heartbeats.")
    image_api_url: str | None = Field(None, description="Where a compute downloads images "
                                      "(the strato API). Default: the API's public URL.")
    resource_audit_interval: float = Field(
        60.0, description="Seconds between resource audits: the compute rebuilds its own "
        "account of what its nodes hold from the instances on it, and the database's "
        "allocations are healed to match (0: never).")
    sync_power_state_interval: float = Field(
        600.0, description="Seconds between power-state syncs: a guest that stopped or "
        "vanished behind strato's back is recorded as such (0: never).")
    fake: FakeDriverSettings = FakeDriverSettings()
    libvirt: LibvirtSettings = LibvirtSettings()


class NetworkSettings(BaseModel, frozen=True):
    data_plane: Literal["auto", "linuxbridge", "fake"] = Field(
        "auto", description="How computes plug ports. linuxbridge: a bridge per network and "
        "a tap per port, filtered by nftables (needs root); fake: recorded only (the fake "
        "virt driver's hosts). auto: linuxbridge with the libvirt driver, else fake.")
    dhcp_agent: Literal["auto", "on", "off"] = Field(
        "auto", description="Run the DHCP agent inside `strato up` (auto: when the compute "
        "uses the libvirt driver). `strato dhcp-agent` runs it on its own.")
    dhcp_state_dir: Path = Field(
        Path("/run/strato/dhcp"), description="The DHCP agent's dnsmasq files (a directory "
        "per network). dnsmasq reads them as nobody, so every directory above must be "
        "traversable by others.")
    firewall_table: str = Field(
        "strato", pattern=r"^[a-z][a-z0-9_]{1,20}$",
        description="The nftables tables a compute owns: <name> (inet, security groups) "
        "and <name>_spoof (bridge, anti-spoofing).")
    resync_interval: float = Field(
        10.0, gt=0, description="Seconds between full passes of each host's data plane "
        "(taps, stale devices, firewall) and of the DHCP agent; changes are also pushed at "
        "once over the bus.")


class SchedulerSettings(BaseModel, frozen=True):
    max_attempts: int = Field(3, description="Hosts one build may try (first + reschedules).")
    service_down_time: float = Field(60.0, description="Seconds without a heartbeat after "
                                     "which a compute counts as down.")
    build_timeout: float = Field(600.0, ge=0, description="Seconds a build may take from "
                                 "the create request to ACTIVE; a build still going then is "
                                 "put in ERROR and its resources freed, even when a message "
                                 "between services was lost (Nova's instance_build_timeout). "
                                 "0 turns the check off.")
    enabled_filters: tuple[str, ...] = Field(
        ("ComputeFilter", "AvailabilityZoneFilter", "ComputeCapabilitiesFilter",
         "ImagePropertiesFilter", "ServerGroupAntiAffinityFilter", "ServerGroupAffinityFilter"),
        description="Policy filters, in the order they run (after the retry and resource "
                    "cuts, which always run first).")
    ram_weight_multiplier: float = Field(1.0, description="Free RAM weight; negative stacks.")
    disk_weight_multiplier: float = Field(1.0, description="Free disk weight; negative stacks.")
    cpu_weight_multiplier: float = Field(1.0, description="Free vCPU weight; negative stacks.")
    soft_affinity_weight_multiplier: float = Field(1.0, ge=0)
    soft_anti_affinity_weight_multiplier: float = Field(1.0, ge=0)
    build_failure_weight_multiplier: float = Field(
        1_000_000.0, ge=0, description="How far down hosts that just failed builds go.")
    host_subset_size: int = Field(1, ge=1, description="Choose at random among the best N "
                                  "hosts, so parallel schedulers spread out.")
    host_refresh_interval: float = Field(1.0, ge=0, description="Seconds between reads of "
                                         "the nodes that changed (the host-state cache).")
    host_full_refresh_interval: float = Field(60.0, gt=0, description="Seconds between "
                                              "full reads of every node.")
    host_refresh_margin: float = Field(5.0, ge=0, description="Seconds of overlap between "
                                       "incremental reads (commit delays, clock skew).")

    @property
    def multipliers(self) -> dict[str, float]:
        return {"RAMWeigher": self.ram_weight_multiplier,
                "DiskWeigher": self.disk_weight_multiplier,
                "CPUWeigher": self.cpu_weight_multiplier,
                "ServerGroupSoftAffinityWeigher": self.soft_affinity_weight_multiplier,
                "ServerGroupSoftAntiAffinityWeigher": self.soft_anti_affinity_weight_multiplier,
                "BuildFailureWeigher": self.build_failure_weight_multiplier}


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="STRATO_", env_nested_delimiter="__",
                                      frozen=True, extra="forbid")

    data_dir: Path = Field(Path(os.path.expanduser("~/.local/share/strato")),
                           description="Where the database, images and instances live.")
    log_level: str = "INFO"
    api: ApiSettings = ApiSettings()
    db: DbSettings = DbSettings()
    rpc: RpcSettings = RpcSettings()
    compute: ComputeSettings = ComputeSettings()
    scheduler: SchedulerSettings = SchedulerSettings()
    network: NetworkSettings = NetworkSettings()
    identity: IdentitySettings = IdentitySettings()

    @property
    def fernet_key_repository(self) -> Path:
        return self.identity.key_repository or self.data_dir / "fernet-keys"

    @property
    def database_url(self) -> str:
        return self.db.url or f"sqlite+aiosqlite:///{self.data_dir / 'strato.db'}"

    @classmethod
    def settings_customise_sources(
        cls, settings_cls: type[BaseSettings], init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource, dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Highest priority first: explicit arguments, then STRATO_* variables, then the
        # TOML file (when load_settings named one).
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if settings_cls.model_config.get("toml_file"):
            sources.append(TomlConfigSettingsSource(settings_cls))
        return tuple(sources)


def load_settings(config_file: Path | None = None, **overrides: Any) -> Settings:
    """Settings from ``config_file`` (default: ``$STRATO_CONFIG``, if set), the
    environment, and ``overrides`` (highest priority)."""
    path = config_file or os.environ.get("STRATO_CONFIG")
    if not path:
        return Settings(**overrides)
    if not Path(path).is_file():
        raise Invalid(f"settings file {path} does not exist")

    class FileSettings(Settings):
        model_config = SettingsConfigDict(**{**Settings.model_config, "toml_file": path})

    return FileSettings(**overrides)
