"""ComputeCapabilitiesFilter, ImagePropertiesFilter and the extra-spec operators."""

from __future__ import annotations

import json
from collections.abc import Mapping

import pytest

from strato.domain.ids import FlavorId, HostName, ImageId, NodeName
from strato.domain.images import Image, ImageStatus
from strato.domain.resources import Flavor, NodeCapacity, Resources
from strato.scheduler.capabilities import (
    canonical_arch,
    canonical_hv_type,
    canonical_vm_mode,
    capabilities,
    compute_capabilities_filter,
    hypervisor_version_str,
    image_properties_filter,
)
from strato.scheduler.extra_specs import match
from strato.scheduler.state import HostState, RequestSpec

CPU_INFO = json.dumps({"arch": "x86_64", "virt_type": "qemu", "accelerator": "tcg",
                       "model": "qemu64", "features": ["sse", "sse2", "aes"],
                       "topology": {"sockets": 1, "cores": 4, "threads": 1}})
QEMU = (("x86_64", "qemu", "hvm"),)
NEED = Resources(vcpus=1, memory_mb=512, disk_gb=1)


def host(name: str = "h1", *, mem: int = 8192, used_mem: int = 0, disk: int = 100,
         used_disk: int = 0, vcpus: int = 4, used_vcpus: int = 0, instances: int = 0,
         hv_type: str = "QEMU", hv_version: int = 8_002_002, cpu_info: str = CPU_INFO,
         supported: tuple[tuple[str, str, str], ...] = QEMU) -> HostState:
    cap = NodeCapacity(host=HostName(name), node=NodeName(f"{name}.node"),
                       total=Resources(vcpus=vcpus, memory_mb=mem, disk_gb=disk),
                       cpu_allocation_ratio=1.0, ram_allocation_ratio=1.0,
                       reserved=Resources(memory_mb=512),
                       hypervisor_type=hv_type, hypervisor_version=hv_version,
                       cpu_info=cpu_info, supported_instances=supported)
    return HostState(capacity=cap, instances=instances,
                     used=Resources(vcpus=used_vcpus, memory_mb=used_mem, disk_gb=used_disk))


def specs(extra_specs: dict[str, str]) -> RequestSpec:
    flavor = Flavor(id=FlavorId("f1"), name="m1.test", vcpus=1, memory_mb=512, root_gb=1,
                    extra_specs=dict(extra_specs))
    return RequestSpec(need=NEED, flavor=flavor)


def flavor_spec(**extra_specs: str) -> RequestSpec:
    return specs(extra_specs)


def image_spec(**properties: str) -> RequestSpec:
    image = Image(id=ImageId("i1"), name="cirros", status=ImageStatus.ACTIVE,
                  properties=dict(properties))
    return RequestSpec(need=NEED, image=image)


# -- extra_specs.match -----------------------------------------------------------------

@pytest.mark.parametrize(("value", "requirement", "expected"), [
    # no operator: exact string equality, whole requirement
    ("QEMU", "QEMU", True),
    ("QEMU", "qemu", False),
    ("a b", "a b", True),
    ("", "", True),
    # '=' means numeric at least
    ("4096", "= 2048", True),
    ("4096", "= 4096", True),
    ("1024", "= 2048", False),
    ("4096.0", "= 4096", True),
    ("10", "= 9", True),          # numeric, not string order ("10" < "9" as text)
    # '==' / '!=' numeric
    ("4", "== 4.0", True),
    ("4", "== 5", False),
    ("4", "!= 5", True),
    ("4", "!= 4.0", False),
    # '>=' / '<='
    ("10", ">= 9", True),
    ("8", ">= 9", False),
    ("9", "<= 10", True),
    ("11", "<= 10", False),
    # string comparisons
    ("abc", "s== abc", True),
    ("abc", "s== abd", False),
    ("abc", "s!= abd", True),
    ("abc", "s!= abc", False),
    ("10", "s< 9", True),         # text order, unlike '<='
    ("9", "s< 10", False),
    ("abc", "s<= abc", True),
    ("abd", "s<= abc", False),
    ("b", "s> a", True),
    ("a", "s> b", False),
    ("abc", "s>= abc", True),
    ("abb", "s>= abc", False),
    # substring
    ("x86_64", "<in> 86", True),
    ("x86_64", "<in> arm", False),
    # all listed words in a list-like value
    ('["sse", "sse2", "aes"]', "<all-in> aes sse2", True),
    ('["sse", "sse2", "aes"]', "<all-in> aes avx", False),
    # one of the alternatives, exactly
    ("qemu", "<or> kvm <or> qemu", True),
    ("kvm", "<or> kvm <or> qemu <or> xen", True),
    ("xen", "<or> kvm <or> qemu", False),
    ("qem", "<or> kvm <or> qemu", False),
    # non-numeric against numeric operators: no match, no exception
    ("abc", "= 1", False),
    ("abc", "== 1", False),
    ("abc", "!= 1", False),
    ("abc", ">= 1", False),
    ("abc", "<= 1", False),
    ("5", ">= lots", False),
    ("", "== 0", False),
    # an operator without operand matches nothing
    ("4", ">=", False),
    ("kvm", "<or>", False),
    ("x", "<in>", False),
])
def test_match(value: str, requirement: str, expected: bool) -> None:
    assert match(value, requirement) is expected


def test_match_uses_only_the_first_operand_of_single_operand_operators() -> None:
    assert match("abc", "s== abc xyz")
    assert not match("abc", "s== xyz abc")


def test_match_with_extra_whitespace() -> None:
    assert match("4096", "  >=   2048 ")
    assert match("qemu", "<or>  kvm   <or> qemu")


# -- ComputeCapabilitiesFilter ---------------------------------------------------------

def test_no_flavor_or_no_extra_specs_passes() -> None:
    assert compute_capabilities_filter(host(), RequestSpec(need=NEED)) is None
    assert compute_capabilities_filter(host(), flavor_spec()) is None


def test_scoped_capability_matches_and_fails_with_key_and_both_values() -> None:
    assert compute_capabilities_filter(
        host(), specs({"capabilities:hypervisor_type": "QEMU"})) is None
    reason = compute_capabilities_filter(
        host(), specs({"capabilities:hypervisor_type": "fake"}))
    assert reason == "capabilities:hypervisor_type: host has QEMU, flavor wants fake"


def test_unscoped_capability_name_is_checked_like_the_scoped_one() -> None:
    assert compute_capabilities_filter(host(), flavor_spec(hypervisor_type="QEMU")) is None
    reason = compute_capabilities_filter(host(), flavor_spec(hypervisor_type="fake"))
    assert reason == "hypervisor_type: host has QEMU, flavor wants fake"


def test_unscoped_key_that_is_no_capability_is_ignored() -> None:
    # Left to other filters (aggregate extra specs use such keys), as in Nova.
    assert compute_capabilities_filter(host(), flavor_spec(ssd="true")) is None


@pytest.mark.parametrize("key", [
    "hw:cpu_policy", "quota:cpu_shares", "aggregate_instance_extra_specs:ssd",
    "trait:HW_CPU_X86_AVX2", "resources:VGPU", "hw_rng:allowed", "cpu_info:arch",
])
def test_other_scopes_are_ignored(key: str) -> None:
    assert compute_capabilities_filter(host(), specs({key: "no host has this"})) is None


def test_nested_cpu_info_key() -> None:
    assert compute_capabilities_filter(
        host(), specs({"capabilities:cpu_info:arch": "x86_64"})) is None
    reason = compute_capabilities_filter(
        host(), specs({"capabilities:cpu_info:arch": "aarch64"}))
    assert reason == "capabilities:cpu_info:arch: host has x86_64, flavor wants aarch64"
    assert compute_capabilities_filter(
        host(), specs({"capabilities:cpu_info:topology:cores": ">= 4"})) is None
    assert compute_capabilities_filter(
        host(), specs({"capabilities:cpu_info:topology:cores": ">= 8"})) is not None
    assert compute_capabilities_filter(
        host(), specs({"capabilities:cpu_info:features": "<all-in> sse2 aes"})) is None
    assert compute_capabilities_filter(
        host(), specs({"capabilities:cpu_info:features": "<all-in> avx512f"})) is not None


def test_missing_capability_fails() -> None:
    for key in ("capabilities:cpu_info:no_such_key", "capabilities:no_such_thing",
                "capabilities:cpu_info:arch:deeper", "capabilities:"):
        reason = compute_capabilities_filter(host(), specs({key: "x"}))
        assert reason == f"{key}: host has no such capability, flavor wants x"


def test_blank_or_broken_cpu_info_is_a_missing_capability() -> None:
    spec = specs({"capabilities:cpu_info:arch": "x86_64"})
    assert compute_capabilities_filter(host(cpu_info=""), spec) is not None
    assert compute_capabilities_filter(host(cpu_info="not json"), spec) is not None
    assert compute_capabilities_filter(host(cpu_info="[1, 2]"), spec) is not None


def test_free_ram_mb_is_computed_from_capacity_and_usage() -> None:
    # 8192 total, 512 reserved, 3000 used: 4680 free.
    h = host(mem=8192, used_mem=3000)
    assert h.free.memory_mb == 4680
    assert compute_capabilities_filter(h, specs({"capabilities:free_ram_mb": ">= 4680"})) \
        is None
    assert compute_capabilities_filter(h, flavor_spec(free_ram_mb=">= 4680")) is None
    reason = compute_capabilities_filter(h, specs({"capabilities:free_ram_mb": ">= 4681"}))
    assert reason == "capabilities:free_ram_mb: host has 4680, flavor wants >= 4681"


def test_numeric_capabilities() -> None:
    h = host(vcpus=8, used_vcpus=3, disk=200, used_disk=50, instances=7)
    checks = {
        "capabilities:hypervisor_version": "== 8002002",
        "capabilities:vcpus_total": "== 8",
        "capabilities:vcpus_used": "== 3",
        "capabilities:memory_mb": "== 8192",
        "capabilities:free_disk_mb": f"== {150 * 1024}",
        "capabilities:total_usable_disk_gb": "== 200",
        "capabilities:num_instances": "== 7",
    }
    for key, requirement in checks.items():
        assert compute_capabilities_filter(h, specs({key: requirement})) is None, key
        wrong = requirement.replace("==", "!=")
        assert compute_capabilities_filter(h, specs({key: wrong})) is not None, key


def test_host_names_and_supported_instances() -> None:
    h = host("compute-3")
    assert compute_capabilities_filter(h, specs({"capabilities:host": "compute-3"})) is None
    assert compute_capabilities_filter(
        h, specs({"capabilities:hypervisor_hostname": "compute-3.node"})) is None
    assert compute_capabilities_filter(
        h, specs({"capabilities:supported_instances": "<in> qemu"})) is None
    assert compute_capabilities_filter(
        h, specs({"capabilities:supported_instances": "<in> aarch64"})) is not None


def test_every_spec_must_match() -> None:
    spec = specs({"capabilities:hypervisor_type": "QEMU", "hw:cpu_policy": "dedicated",
                  "capabilities:cpu_info:accelerator": "kvm"})
    reason = compute_capabilities_filter(host(), spec)
    assert reason == "capabilities:cpu_info:accelerator: host has tcg, flavor wants kvm"


def test_capabilities_mapping() -> None:
    caps = capabilities(host(used_mem=1000))
    assert caps["hypervisor_type"] == "QEMU"
    assert caps["free_ram_mb"] == 8192 - 512 - 1000
    cpu_info = caps["cpu_info"]
    assert isinstance(cpu_info, Mapping)
    assert cpu_info["arch"] == "x86_64"
    assert cpu_info["topology"] == {"sockets": 1, "cores": 4, "threads": 1}
    assert caps["supported_instances"] == [["x86_64", "qemu", "hvm"]]


# -- ImagePropertiesFilter -------------------------------------------------------------

def test_image_without_properties_passes_anywhere() -> None:
    assert image_properties_filter(host(), RequestSpec(need=NEED)) is None
    assert image_properties_filter(host(), image_spec()) is None
    assert image_properties_filter(host(supported=()), image_spec(hw_disk_bus="virtio")) \
        is None


def test_image_arch_hv_type_vm_mode_match() -> None:
    h = host()
    assert image_properties_filter(h, image_spec(hw_architecture="x86_64")) is None
    assert image_properties_filter(h, image_spec(img_hv_type="qemu")) is None
    assert image_properties_filter(h, image_spec(hw_vm_mode="hvm")) is None
    assert image_properties_filter(h, image_spec(hw_architecture="x86_64", img_hv_type="qemu",
                                                 hw_vm_mode="hvm")) is None


def test_image_mismatch_reason_names_what_image_wants_and_host_runs() -> None:
    reason = image_properties_filter(host(), image_spec(hw_architecture="aarch64",
                                                        img_hv_type="qemu"))
    assert reason == "image wants arch=aarch64 hv_type=qemu; host runs x86_64/qemu/hvm"
    assert image_properties_filter(host(), image_spec(img_hv_type="kvm")) \
        == "image wants hv_type=kvm; host runs x86_64/qemu/hvm"
    assert image_properties_filter(host(), image_spec(hw_vm_mode="xen")) \
        == "image wants vm_mode=xen; host runs x86_64/qemu/hvm"


def test_image_triple_must_match_one_supported_instance_position_by_position() -> None:
    multi = host(supported=(("x86_64", "qemu", "hvm"), ("aarch64", "qemu", "hvm"),
                            ("i686", "kvm", "hvm")))
    assert image_properties_filter(multi, image_spec(hw_architecture="aarch64")) is None
    assert image_properties_filter(
        multi, image_spec(hw_architecture="i686", img_hv_type="kvm")) is None
    # Each value exists on some triple, but no single triple has both.
    reason = image_properties_filter(
        multi, image_spec(hw_architecture="aarch64", img_hv_type="kvm"))
    assert reason == ("image wants arch=aarch64 hv_type=kvm; host runs "
                      "x86_64/qemu/hvm, aarch64/qemu/hvm, i686/kvm/hvm")
    # A value in the wrong place does not count (Nova only asks "somewhere in the triple").
    assert image_properties_filter(host(), image_spec(img_hv_type="hvm")) \
        == "image wants hv_type=hvm; host runs x86_64/qemu/hvm"


@pytest.mark.parametrize(("alias", "canonical"), [
    ("amd64", "x86_64"), ("x64", "x86_64"), ("X86_64", "x86_64"), ("i386", "i686"),
    ("i486", "i686"), ("i586", "i686"), ("x86", "i686"), ("arm64", "aarch64"),
])
def test_arch_aliases(alias: str, canonical: str) -> None:
    assert canonical_arch(alias) == canonical
    assert image_properties_filter(host(supported=((canonical, "qemu", "hvm"),)),
                                   image_spec(hw_architecture=alias)) is None


def test_hv_type_and_vm_mode_aliases() -> None:
    assert canonical_hv_type("xapi") == "xen"
    assert canonical_hv_type("QEMU") == "qemu"
    assert canonical_vm_mode("hv") == "hvm"
    assert canonical_vm_mode("pv") == "xen"
    xen = host(supported=(("x86_64", "xen", "xen"),))
    assert image_properties_filter(xen, image_spec(img_hv_type="xapi", hw_vm_mode="pv")) \
        is None
    assert image_properties_filter(host(), image_spec(hw_vm_mode="HV")) is None
    assert image_properties_filter(host(), image_spec(img_hv_type="QEMU")) is None


def test_host_side_aliases_are_canonicalised_too() -> None:
    assert image_properties_filter(host(supported=(("amd64", "qemu", "hvm"),)),
                                   image_spec(hw_architecture="x86_64")) is None


def test_legacy_property_names() -> None:
    h = host()
    assert image_properties_filter(h, image_spec(architecture="x86_64")) is None
    assert image_properties_filter(h, image_spec(architecture="aarch64")) \
        == "image wants arch=aarch64; host runs x86_64/qemu/hvm"
    assert image_properties_filter(h, image_spec(hypervisor_type="fake")) \
        == "image wants hv_type=fake; host runs x86_64/qemu/hvm"
    assert image_properties_filter(h, image_spec(vm_mode="xen")) is not None
    assert image_properties_filter(h, image_spec(vm_mode="hvm")) is None
    # The new name wins over the legacy one.
    assert image_properties_filter(
        h, image_spec(hw_architecture="x86_64", architecture="aarch64")) is None


def test_fake_driver_host() -> None:
    fake = host(hv_type="fake", hv_version=1000, supported=(("x86_64", "fake", "hvm"),))
    assert image_properties_filter(fake, image_spec(img_hv_type="fake")) is None
    assert image_properties_filter(fake, image_spec(img_hv_type="qemu")) \
        == "image wants hv_type=qemu; host runs x86_64/fake/hvm"


def test_host_without_supported_instances_fails_when_any_property_is_set() -> None:
    bare = host(supported=())
    assert image_properties_filter(bare, image_spec(hw_architecture="x86_64")) \
        == "image wants arch=x86_64; host reports no supported instance types"
    assert image_properties_filter(bare, image_spec(hw_vm_mode="hvm")) is not None


def test_hypervisor_version_str() -> None:
    assert hypervisor_version_str(8_002_002) == "8.2.2"
    assert hypervisor_version_str(10_000_000) == "10.0.0"
    assert hypervisor_version_str(1000) == "0.1.0"


@pytest.mark.parametrize(("requirement", "ok"), [
    (">=8.2", True), (">=8.2.2", True), (">8.2.2", False), (">= 8.2.3", False),
    (">=4.0, <9", True), (">=4.0, <8", False), ("==8.2.2", True), ("8.2.2", True),
    ("8.2", False), ("!=8.2.2", False), ("<10.0", True),   # 10 > 8 numerically
    ("<=8.2.2", True), ("<8.2.2", False), (">= 8", True), ("==8.2.2.0", True),
])
def test_requested_hypervisor_version(requirement: str, ok: bool) -> None:
    h = host(hv_version=8_002_002)
    reason = image_properties_filter(
        h, image_spec(img_hv_type="qemu", img_hv_requested_version=requirement))
    if ok:
        assert reason is None
    else:
        assert reason == (f"img_hv_requested_version: host has QEMU 8.2.2, image wants "
                          f"{requirement}")


def test_requested_version_by_legacy_name() -> None:
    h = host(hv_version=8_002_002)
    assert image_properties_filter(h, image_spec(
        hw_architecture="x86_64", hypervisor_version_requires=">=9.0")) is not None
    assert image_properties_filter(h, image_spec(
        hw_architecture="x86_64", hypervisor_version_requires=">=8.0")) is None


def test_requested_version_alone_or_without_host_version_is_not_checked() -> None:
    # As Nova: only checked when arch, hv_type or vm_mode is asked for too, and when the
    # host reports a version at all.
    assert image_properties_filter(host(), image_spec(img_hv_requested_version=">=99")) \
        is None
    assert image_properties_filter(
        host(hv_version=0), image_spec(hw_architecture="x86_64",
                                       img_hv_requested_version=">=99")) is None


def test_unreadable_version_requirement_fails_with_reason() -> None:
    reason = image_properties_filter(host(), image_spec(
        hw_architecture="x86_64", img_hv_requested_version="newest please"))
    assert reason == ("img_hv_requested_version: cannot read 'newest please' as a version "
                      "requirement (host has 8.2.2)")
