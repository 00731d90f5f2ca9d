"""The config drive: the metadata tree Nova's layout prescribes, and the ISO image built
from it, read back through Rock Ridge (what Linux guests mount), Joliet (what Windows
guests mount) and, where installed, an independent reader (isoinfo or xorriso)."""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pycdlib
import pytest

from strato.domain.errors import Invalid
from strato.domain.networks import HostRoute, Vif, VifSubnet
from strato.virt.configdrive import (
    MAX_FILE_BYTES,
    MAX_FILES,
    VERSIONS,
    DriveFile,
    InstanceMetadata,
    metadata_tree,
    network_data,
    write_config_drive,
)

UUID = "0b9e5c3a-6a43-4a8c-9f7e-2c1d3e4f5a6b"
PER_VERSION = {"meta_data.json", "network_data.json", "vendor_data.json", "vendor_data2.json"}
BINARY_USER_DATA = b"#!/bin/sh\n" + bytes(range(256)) + b"\xff\xfe\x80 not utf-8 \xc3\x28"
TRICKY = 'quote " back\\slash <tag> & amp\nnew line\ttab Ünïcode 日本 🚀'


PORT_A, PORT_B = "3f1e2d4c-5b6a-4978-8e9f-0a1b2c3d4e5f", "9a8b7c6d-5e4f-4321-8765-43210fedcba9"
VIF_A = Vif(port_id=PORT_A, network_id="net-a", network_name="private",
            mac_address="fa:16:3e:11:22:33", mtu=1450, subnets=(
                VifSubnet(id="sub-a4", cidr="10.0.0.0/24", ip_version=4,
                          gateway_ip="10.0.0.1", ips=("10.0.0.5",),
                          dns_nameservers=("10.0.0.2", "8.8.8.8"),
                          host_routes=(HostRoute(destination="192.168.10.0/24",
                                                 nexthop="10.0.0.254"),)),
                VifSubnet(id="sub-a6", cidr="fd00:1::/64", ip_version=6,
                          gateway_ip="fd00:1::1", ips=("fd00:1::5",))))
VIF_B = Vif(port_id=PORT_B, network_id="net-b", network_name="storage",
            mac_address="fa:16:3e:44:55:66", subnets=(
                VifSubnet(id="sub-b4", cidr="172.16.0.0/20", ip_version=4, gateway_ip=None,
                          ips=("172.16.3.9",), dns_nameservers=("8.8.8.8",),
                          enable_dhcp=False),))
LINK_A = {"id": "tap3f1e2d4c-5b", "vif_id": PORT_A, "type": "bridge", "mtu": 1450,
          "ethernet_mac_address": "fa:16:3e:11:22:33"}
NETWORKS_A = [
    {"id": "network0", "type": "ipv4", "link": "tap3f1e2d4c-5b", "ip_address": "10.0.0.5",
     "netmask": "255.255.255.0",
     "routes": [{"network": "0.0.0.0", "netmask": "0.0.0.0", "gateway": "10.0.0.1"},
                {"network": "192.168.10.0", "netmask": "255.255.255.0",
                 "gateway": "10.0.0.254"}],
     "network_id": "net-a",
     "services": [{"type": "dns", "address": "10.0.0.2"},
                  {"type": "dns", "address": "8.8.8.8"}]},
    {"id": "network1", "type": "ipv6", "link": "tap3f1e2d4c-5b", "ip_address": "fd00:1::5",
     "netmask": "ffff:ffff:ffff:ffff::",
     "routes": [{"network": "::", "netmask": "::", "gateway": "fd00:1::1"}],
     "network_id": "net-a", "services": []},
]


def make_md(**overrides: Any) -> InstanceMetadata:
    """A fully populated instance; tests override the part they look at."""
    fields: dict[str, Any] = {
        "uuid": UUID,
        "name": "Web Server 1",
        "hostname": "web-server-1",
        "project_id": "p-1",
        "availability_zone": "nova",
        "launch_index": 2,
        "public_keys": {"mykey": "ssh-ed25519 AAAAC3Nza mykey@host"},
        "metadata": {"role": "web", "tier": "front"},
        "files": (DriveFile(path="/etc/motd", contents=b"hello\n"),
                  DriveFile(path="/root/bin.dat", contents=b"\x00\x01\xff")),
        "user_data": b"#cloud-config\n",
        "vifs": (VIF_A,),
        "vendor_data": {"vendor": {"x": 1}},
    }
    fields.update(overrides)
    return InstanceMetadata(**fields)


@pytest.fixture
def build(tmp_path: Path) -> Iterator[Any]:
    """``build(md)`` writes a drive and returns it opened with pycdlib (closed after)."""
    opened: list[pycdlib.PyCdlib] = []

    def _build(md: InstanceMetadata) -> pycdlib.PyCdlib:
        path = tmp_path / "disk.config"
        write_config_drive(md, path)
        iso = pycdlib.PyCdlib()
        iso.open(str(path))
        opened.append(iso)
        return iso

    yield _build
    for iso in opened:
        iso.close()


def read_rr(iso: pycdlib.PyCdlib, path: str) -> bytes:
    """A file's contents by its Rock Ridge path."""
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, rr_path=path)
    return out.getvalue()


def read_joliet(iso: pycdlib.PyCdlib, path: str) -> bytes:
    """A file's contents by its Joliet path."""
    out = io.BytesIO()
    iso.get_file_from_iso_fp(out, joliet_path=path)
    return out.getvalue()


def read_both(iso: pycdlib.PyCdlib, path: str) -> bytes:
    """A file's contents, checking Rock Ridge and Joliet agree."""
    data = read_rr(iso, path)
    assert read_joliet(iso, path) == data
    return data


def rr_children(iso: pycdlib.PyCdlib, path: str) -> set[str]:
    """The Rock Ridge names in a directory, without '.' and '..'."""
    names = set()
    for child in iso.list_children(rr_path=path):
        if child.is_dot() or child.is_dotdot():
            continue
        assert child.rock_ridge is not None
        names.add(child.rock_ridge.name().decode())
    return names


def meta_data(iso: pycdlib.PyCdlib, version: str = "latest") -> Any:
    """meta_data.json of ``version``, parsed."""
    return json.loads(read_both(iso, f"/openstack/{version}/meta_data.json"))


# ------------------------------------------------------------------------ the tree
def test_tree_layout() -> None:
    tree = metadata_tree(make_md())
    expected = {f"openstack/{v}/{name}" for v in VERSIONS for name in PER_VERSION | {"user_data"}}
    expected |= {"openstack/content/0000", "openstack/content/0001"}
    assert set(tree) == expected
    assert tree["openstack/latest/vendor_data2.json"] == b"{}"


def test_tree_json_is_ascii_with_nova_separators() -> None:
    tree = metadata_tree(make_md(name=TRICKY))
    raw = tree["openstack/latest/meta_data.json"]
    raw.decode("ascii")
    assert re.search(rb'"uuid": "' + UUID.encode() + rb'"', raw)
    assert b'"hostname": "web-server-1"' in raw
    assert b'"launch_index": 2, ' in raw


def test_default_network_data() -> None:
    md = InstanceMetadata(uuid=UUID, name="n", hostname="n", project_id="p")
    tree = metadata_tree(md)
    assert json.loads(tree["openstack/latest/network_data.json"]) == {
        "links": [], "networks": [], "services": []}
    assert json.loads(tree["openstack/latest/vendor_data.json"]) == {}
    assert not any(p.startswith("openstack/content/") for p in tree)


# ------------------------------------------------------------------------ the image
def test_volume_label_is_config_2(build: Any) -> None:
    iso = build(make_md())
    assert iso.pvd.volume_identifier.rstrip(b" ") == b"config-2"
    assert iso.joliet_vd is not None
    assert iso.joliet_vd.volume_identifier.decode("utf-16-be").rstrip() == "config-2"


def test_meta_data_has_every_field(build: Any) -> None:
    iso = build(make_md())
    assert meta_data(iso) == {
        "uuid": UUID,
        "name": "Web Server 1",
        "hostname": "web-server-1",
        "availability_zone": "nova",
        "project_id": "p-1",
        "launch_index": 2,
        "meta": {"role": "web", "tier": "front"},
        "public_keys": {"mykey": "ssh-ed25519 AAAAC3Nza mykey@host"},
        "keys": [{"name": "mykey", "type": "ssh", "data": "ssh-ed25519 AAAAC3Nza mykey@host"}],
        "files": [{"path": "/etc/motd", "content_path": "/content/0000"},
                  {"path": "/root/bin.dat", "content_path": "/content/0001"}],
        "devices": [],
    }


def test_other_json_files(build: Any) -> None:
    md = make_md()
    iso = build(md)
    for version in VERSIONS:
        base = f"/openstack/{version}"
        assert (json.loads(read_both(iso, f"{base}/network_data.json"))
                == network_data(md.vifs))
        assert json.loads(read_both(iso, f"{base}/vendor_data.json")) == md.vendor_data
        assert json.loads(read_both(iso, f"{base}/vendor_data2.json")) == {}


def test_user_data_round_trips_byte_for_byte(build: Any) -> None:
    iso = build(make_md(user_data=BINARY_USER_DATA))
    for version in VERSIONS:
        assert read_both(iso, f"/openstack/{version}/user_data") == BINARY_USER_DATA


def test_empty_user_data_is_still_a_file(build: Any) -> None:
    iso = build(make_md(user_data=b""))
    assert read_both(iso, "/openstack/latest/user_data") == b""


def test_no_user_data_means_no_user_data_file(build: Any) -> None:
    iso = build(make_md(user_data=None))
    for version in VERSIONS:
        assert rr_children(iso, f"/openstack/{version}") == PER_VERSION


def test_awkward_text_round_trips_through_json(build: Any) -> None:
    md = make_md(name=TRICKY, metadata={TRICKY: TRICKY, "k": '{"json": "inside"}'},
                 public_keys={"key <1>": "ssh-rsa AAAA\"x\" & y\n"},
                 vendor_data={"v": [TRICKY]})
    iso = build(md)
    data = meta_data(iso)
    assert data["name"] == TRICKY
    assert data["meta"] == md.metadata
    assert data["public_keys"] == md.public_keys
    assert json.loads(read_both(iso, "/openstack/latest/vendor_data.json")) == {"v": [TRICKY]}


def test_injected_files_are_at_their_content_path(build: Any) -> None:
    md = make_md()
    iso = build(md)
    listed = meta_data(iso)["files"]
    assert [f["path"] for f in listed] == [f.path for f in md.files]
    for entry, injected in zip(listed, md.files, strict=True):
        assert read_both(iso, f"/openstack{entry['content_path']}") == injected.contents
    assert rr_children(iso, "/openstack/content") == {"0000", "0001"}


def test_version_directories_are_identical(build: Any) -> None:
    iso = build(make_md())
    assert rr_children(iso, "/openstack") == {*VERSIONS, "content"}
    first, *rest = VERSIONS
    names = rr_children(iso, f"/openstack/{first}")
    assert names == PER_VERSION | {"user_data"}
    for version in rest:
        assert rr_children(iso, f"/openstack/{version}") == names
        for name in names:
            assert (read_both(iso, f"/openstack/{version}/{name}")
                    == read_both(iso, f"/openstack/{first}/{name}"))


def test_iso9660_names_are_generated_placeholders(build: Any) -> None:
    iso = build(make_md())
    pattern = re.compile(rb"^(D\d{4}|F\d{4}\.;1)$")
    stack = ["/"]
    seen = 0
    while stack:
        directory = stack.pop()
        for child in iso.list_children(iso_path=directory):
            if child.is_dot() or child.is_dotdot():
                continue
            name = child.file_identifier()
            assert pattern.match(name), name
            seen += 1
            if child.is_dir():
                stack.append(f"{directory.rstrip('/')}/{name.decode()}")
    assert seen == len(metadata_tree(make_md())) + 4  # + openstack, two versions, content


def test_write_replaces_atomically_and_privately(tmp_path: Path) -> None:
    path = tmp_path / "disk.config"
    path.write_bytes(b"old")
    write_config_drive(make_md(), path)
    assert os.listdir(tmp_path) == ["disk.config"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert path.stat().st_size > 3


# ------------------------------------------------------------------------ validation
@pytest.mark.parametrize("bad", [
    "etc/motd", "./etc/motd", "/etc/../etc/shadow", "/..", "/etc/./motd", "/etc//motd",
    "/etc/motd/", "//etc/motd", "/", "", "/etc/mo\x00td", "/etc/mo\ntd", "/" + "a" * 255,
    "/" + "é" * 128,
])
def test_bad_injected_paths_are_rejected(bad: str, tmp_path: Path) -> None:
    md = make_md(files=(DriveFile(path=bad, contents=b"x"),))
    with pytest.raises(Invalid, match="injected file path"):
        metadata_tree(md)
    with pytest.raises(Invalid):
        write_config_drive(md, tmp_path / "disk.config")
    assert os.listdir(tmp_path) == []


def test_longest_allowed_path_is_accepted() -> None:
    path = "/" + "a" * 254
    tree = metadata_tree(make_md(files=(DriveFile(path=path, contents=b""),)))
    assert path in tree["openstack/latest/meta_data.json"].decode()


def test_injected_file_limits() -> None:
    too_many = tuple(DriveFile(path=f"/f{i}", contents=b"") for i in range(MAX_FILES + 1))
    with pytest.raises(Invalid, match="at most 5"):
        metadata_tree(make_md(files=too_many))
    metadata_tree(make_md(files=too_many[:MAX_FILES]))
    with pytest.raises(Invalid, match="larger than 10240"):
        metadata_tree(make_md(files=(DriveFile(path="/big", contents=b"x" * 10241),)))
    metadata_tree(make_md(files=(DriveFile(path="/big", contents=b"x" * MAX_FILE_BYTES),)))
    with pytest.raises(Invalid, match="given twice"):
        metadata_tree(make_md(files=(DriveFile(path="/a", contents=b"1"),
                                     DriveFile(path="/a", contents=b"2"))))


@pytest.mark.parametrize(("field", "value"), [
    ("hostname", "Not Sanitised"), ("hostname", 'evil"name'), ("hostname", ""),
    ("uuid", 'x", "hostname": "evil'), ("uuid", ""), ("uuid", "ü"),
])
def test_identity_the_guest_parses_with_sed_must_be_plain(field: str, value: str) -> None:
    with pytest.raises(Invalid):
        metadata_tree(make_md(**{field: value}))


# ------------------------------------------------------------------ independent reader
ISOINFO = shutil.which("isoinfo")
XORRISO = shutil.which("xorriso")


def _read_with_tool(image: Path, path: str, out_dir: Path) -> bytes:
    """``path`` from ``image`` through Rock Ridge, read by isoinfo or xorriso."""
    if ISOINFO is not None:
        return subprocess.run([ISOINFO, "-R", "-i", str(image), "-x", path],
                              check=True, capture_output=True).stdout
    assert XORRISO is not None
    target = out_dir / path.strip("/").replace("/", "_")
    subprocess.run([XORRISO, "-osirrox", "on", "-indev", str(image), "-extract", path,
                    str(target)], check=True, capture_output=True)
    return target.read_bytes()


def _label_with_tool(image: Path) -> str:
    """The volume label as isoinfo or xorriso reports it."""
    if ISOINFO is not None:
        out = subprocess.run([ISOINFO, "-d", "-i", str(image)], check=True,
                             capture_output=True, text=True).stdout
        match = re.search(r"^Volume id:\s*(.*)$", out, re.MULTILINE)
    else:
        assert XORRISO is not None
        result = subprocess.run([XORRISO, "-indev", str(image), "-pvd_info"], check=True,
                                capture_output=True, text=True)
        match = re.search(r"^Volume Id\s*:\s*(.*)$", result.stdout + result.stderr,
                          re.MULTILINE)
    assert match is not None
    return match.group(1).strip()


@pytest.mark.skipif(ISOINFO is None and XORRISO is None,
                    reason="neither isoinfo nor xorriso is installed")
def test_independent_reader_sees_the_same_drive(tmp_path: Path) -> None:
    md = make_md(user_data=BINARY_USER_DATA, name=TRICKY)
    image = tmp_path / "disk.config"
    write_config_drive(md, image)
    assert _label_with_tool(image) == "config-2"
    tree = metadata_tree(md)
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    for path, data in tree.items():
        assert _read_with_tool(image, f"/{path}", out_dir) == data, path


# ------------------------------------------------------------------ network_data.json
def read_network_data(iso: pycdlib.PyCdlib) -> Any:
    """network_data.json, checking every version directory holds the same bytes."""
    first, *rest = (read_both(iso, f"/openstack/{v}/network_data.json") for v in VERSIONS)
    assert all(data == first for data in rest)
    return json.loads(first)


def test_network_data_for_one_vif_with_ipv4_and_ipv6(build: Any) -> None:
    iso = build(make_md(vifs=(VIF_A,)))
    assert read_network_data(iso) == {
        "links": [LINK_A],
        "networks": NETWORKS_A,
        "services": [{"type": "dns", "address": "10.0.0.2"},
                     {"type": "dns", "address": "8.8.8.8"}],
    }


def test_network_data_for_two_vifs(build: Any) -> None:
    iso = build(make_md(vifs=(VIF_A, VIF_B)))
    assert read_network_data(iso) == {
        "links": [LINK_A,
                  {"id": "tap9a8b7c6d-5e", "vif_id": PORT_B, "type": "bridge", "mtu": 1500,
                   "ethernet_mac_address": "fa:16:3e:44:55:66"}],
        "networks": [*NETWORKS_A,
                     {"id": "network2", "type": "ipv4", "link": "tap9a8b7c6d-5e",
                      "ip_address": "172.16.3.9", "netmask": "255.255.240.0", "routes": [],
                      "network_id": "net-b",
                      "services": [{"type": "dns", "address": "8.8.8.8"}]}],
        "services": [{"type": "dns", "address": "10.0.0.2"},
                     {"type": "dns", "address": "8.8.8.8"}],
    }


def test_network_data_has_one_network_per_fixed_ip_and_links_without_subnets() -> None:
    two_ips = VifSubnet(id="s", cidr="10.0.0.0/24", ip_version=4, gateway_ip=None,
                        ips=("10.0.0.5", "10.0.0.6"))
    data = network_data((Vif(port_id="p1", network_id="n1", network_name="a",
                             mac_address="fa:16:3e:00:00:01"),
                         Vif(port_id="p2", network_id="n2", network_name="b",
                             mac_address="fa:16:3e:00:00:02", subnets=(two_ips,))))
    assert [link["id"] for link in data["links"]] == ["tapp1", "tapp2"]
    assert [(n["id"], n["link"], n["ip_address"]) for n in data["networks"]] == [
        ("network0", "tapp2", "10.0.0.5"), ("network1", "tapp2", "10.0.0.6")]
    assert data["services"] == []


def test_network_data_without_vifs(build: Any) -> None:
    iso = build(make_md(vifs=()))
    assert read_network_data(iso) == {"links": [], "networks": [], "services": []}


def test_network_data_is_one_key_per_line_in_nova_order() -> None:
    """The tiny guest's init reads it line by line: every scalar on its own line, and a
    network's address and netmask before its routes' netmasks."""
    raw = metadata_tree(make_md(vifs=(VIF_A,)))["openstack/latest/network_data.json"]
    raw.decode("ascii")
    lines = [line.strip() for line in raw.decode().splitlines()]
    assert '"ip_address": "10.0.0.5",' in lines
    assert all(line.count('": ') <= 1 for line in lines)
    network = lines[lines.index('"id": "network0",'):]
    assert [line.split('"')[1] for line in network[:6]] == [
        "id", "type", "link", "ip_address", "netmask", "routes"]


@pytest.mark.parametrize("bad", [
    {"ips": ("10.0.0.300",)}, {"gateway_ip": "gw"}, {"cidr": "10.0.0.0/33"},
    {"dns_nameservers": ('10.0.0.2", "x',)}, {"ip_version": 5},
    {"host_routes": (HostRoute(destination="10.1.0.0/16", nexthop="nowhere"),)},
])
def test_network_data_refuses_what_is_not_an_address(bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {"id": "s", "cidr": "10.0.0.0/24", "ip_version": 4,
                              "gateway_ip": "10.0.0.1", "ips": ("10.0.0.5",)}
    subnet = VifSubnet(**(fields | bad))
    with pytest.raises(Invalid):
        metadata_tree(make_md(vifs=(Vif(port_id="p", network_id="n", network_name="n",
                                        mac_address="fa:16:3e:00:00:01",
                                        subnets=(subnet,)),)))
