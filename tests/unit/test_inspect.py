"""Image format inspection: real images from qemu-img where it is installed, hand-built
headers everywhere, and a property test that arbitrary bytes only ever raise InspectError."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from strato.domain.errors import Invalid
from strato.image.inspect import (
    HEADER_BYTES,
    ImageInfo,
    InspectError,
    check_safe,
    inspect_header,
)

GiB = 1 << 30
QEMU_IMG = shutil.which("qemu-img")
needs_qemu_img = pytest.mark.skipif(QEMU_IMG is None, reason="qemu-img is not installed")


def inspect(data: bytes) -> ImageInfo:
    """Inspect ``data`` as a whole image, the way the upload path does."""
    return inspect_header(data[:HEADER_BYTES], len(data))


# --------------------------------------------------------------------- hand-built headers
def qcow2(version: int = 3, *, size: int = GiB, cluster_bits: int = 16,
          backing: bytes = b"", incompat: int = 0, header_length: int = 104,
          extensions: tuple[tuple[int, bytes], ...] = ()) -> bytes:
    """A qcow2 header cluster as qemu lays it out: header, extensions, end marker, then
    the backing file name."""
    exts = b"".join(struct.pack(">II", kind, len(data)) + data.ljust(-(-len(data) // 8) * 8,
                                                                     b"\0")
                    for kind, data in extensions) + bytes(8)
    fixed = _QCOW2_V2_LEN if version == 2 else header_length
    backing_offset = fixed + len(exts) if backing else 0
    header = struct.pack(">4sIQIIQIIQQIIQ", b"QFI\xfb", version, backing_offset, len(backing),
                         cluster_bits, size, 0, 0, 0, 0, 0, 0, 0)
    if version != 2:
        header += struct.pack(">QQQII", incompat, 0, 0, 4, header_length)
    cluster = header.ljust(fixed, b"\0") + exts + backing
    return cluster.ljust(3 * (1 << min(cluster_bits, 16)), b"\0")


_QCOW2_V2_LEN = 72


def vmdk_descriptor(create_type: str = "monolithicSparse",
                    extents: str = 'RW 2097152 SPARSE "disk.vmdk"',
                    extra: str = "parentCID=ffffffff") -> bytes:
    return (f'# Disk DescriptorFile\nversion=1\nCID=77f9b0a6\n{extra}\n'
            f'createType="{create_type}"\n\n# Extent description\n{extents}\n\n'
            '# The Disk Data Base\n#DDB\n\nddb.virtualHWVersion = "4"\n'
            'ddb.adapterType = "ide"\n').encode()


def vmdk_sparse(capacity_sectors: int = 2097152, *, descriptor: bytes | None = None,
                desc_sector: int = 1, desc_sectors: int = 20, version: int = 1) -> bytes:
    header = struct.pack("<4sIIQQQQ", b"KDMV", version, 3, capacity_sectors, 128,
                         desc_sector, desc_sectors)
    desc = vmdk_descriptor() if descriptor is None else descriptor
    pad = min(desc_sectors, 20) * 512      # a bogus size must not build a huge test image
    return header.ljust(512, b"\0") + desc.ljust(pad, b"\0") + bytes(4096)


def vhd(disk_type: int = 3, size: int = GiB) -> bytes:
    footer = struct.pack(">8sIIQ", b"conectix", 2, 0x10000, 512).ljust(40, b"\0")
    footer += struct.pack(">QQII", size, size, 0, disk_type)
    return footer.ljust(512, b"\0") + b"cxsparse".ljust(1024, b"\0")


def vdi(image_type: int = 1, size: int = GiB, parent: bytes = bytes(16)) -> bytes:
    head = b"<<< QEMU VM Virtual Disk Image >>>\n".ljust(64, b"\0")
    head += struct.pack("<III", 0xBEDA107F, 0x00010001, 0x190)
    head += struct.pack("<II", image_type, 0).ljust(368 - 76, b"\0")
    head += struct.pack("<QII", size, 1 << 20, 0).ljust(440 - 368, b"\0") + parent
    return head.ljust(1024, b"\0")


def iso(blocks: int = 1000, block_size: int = 2048, *, big_endian_blocks: int | None = None,
        ident: bytes = b"CD001") -> bytes:
    """A system area, a primary volume descriptor (sector 16) and a terminator."""
    be_blocks = blocks if big_endian_blocks is None else big_endian_blocks
    pvd = bytearray(2048)
    pvd[0:7] = b"\x01" + ident + b"\x01"
    pvd[80:88] = struct.pack("<I", blocks) + struct.pack(">I", be_blocks)
    pvd[128:132] = struct.pack("<H", block_size) + struct.pack(">H", block_size)
    terminator = (b"\xff" + ident + b"\x01").ljust(2048, b"\0")
    return bytes(0x8000) + bytes(pvd) + terminator + bytes(8192)


# ---------------------------------------------------------------------------------- raw
def test_arbitrary_data_is_raw_of_its_own_size() -> None:
    data = bytes(range(256)) * 1000
    assert inspect(data) == ImageInfo("raw", len(data))


def test_an_empty_image_is_raw_of_size_zero() -> None:
    info = inspect(b"")
    assert info == ImageInfo("raw", 0)
    check_safe(info, "raw")


def test_mbr_and_gpt_disks_are_raw() -> None:
    mbr = bytearray(1 << 20)
    mbr[510:512] = b"\x55\xaa"
    mbr[512:520] = b"EFI PART"
    assert inspect(bytes(mbr)).format == "raw"


def test_only_the_head_is_needed_for_a_large_raw_image() -> None:
    assert inspect_header(bytes(HEADER_BYTES), 10 * GiB) == ImageInfo("raw", 10 * GiB)


@pytest.mark.parametrize(("head", "total"), [(b"abc", 2), (bytes(100), 4096), (b"", 1)])
def test_a_head_that_disagrees_with_the_size_is_a_caller_bug(head: bytes, total: int) -> None:
    with pytest.raises(ValueError):
        inspect_header(head, total)


# -------------------------------------------------------------------------------- qcow2
@pytest.mark.parametrize("version", [2, 3])
def test_plain_qcow2(version: int) -> None:
    info = inspect(qcow2(version, size=5 * GiB))
    assert info == ImageInfo("qcow2", 5 * GiB)
    check_safe(info, "qcow2")


def test_qcow2_with_a_backing_file_is_refused() -> None:
    info = inspect(qcow2(backing=b"/etc/shadow"))
    assert info.backing_file and not info.data_file
    with pytest.raises(Invalid, match="backing file"):
        check_safe(info, "qcow2")


def test_qcow2_v2_with_a_backing_file_is_refused() -> None:
    info = inspect(qcow2(2, backing=b"base.img"))
    assert info.backing_file
    with pytest.raises(Invalid):
        check_safe(info, "qcow2")


def test_qcow2_with_the_external_data_file_bit_is_refused() -> None:
    info = inspect(qcow2(incompat=1 << 2))
    assert info.data_file and not info.backing_file
    with pytest.raises(Invalid, match="external data file"):
        check_safe(info, "qcow2")


def test_qcow2_data_file_extension_alone_is_refused() -> None:
    info = inspect(qcow2(extensions=((0x6803F857, b"x" * 20), (0x44415441, b"/dev/sda"))))
    assert info.data_file


def test_qcow2_known_extensions_and_feature_bits_are_fine() -> None:
    # dirty, compression type and extended L2 bits; a backing-format extension
    info = inspect(qcow2(incompat=0b11001, extensions=((0xE2792ACA, b"raw"),)))
    assert info == ImageInfo("qcow2", GiB)


def test_qcow2_declared_raw_is_refused() -> None:
    with pytest.raises(Invalid, match="qcow2 format, but its disk_format is raw"):
        check_safe(inspect(qcow2()), "raw")


def test_raw_declared_qcow2_is_refused() -> None:
    with pytest.raises(Invalid, match="raw format, but its disk_format is qcow2"):
        check_safe(inspect(bytes(4096)), "qcow2")


def _patch(data: bytes, offset: int, fmt: str, value: int) -> bytes:
    out = bytearray(data)
    struct.pack_into(fmt, out, offset, value)
    return bytes(out)


@pytest.mark.parametrize(("data", "message"), [
    (qcow2(cluster_bits=8), "cluster_bits 8"),
    (qcow2(cluster_bits=22), "cluster_bits 22"),
    (qcow2(version=99), "version 99"),
    (qcow2(version=1), "version 1"),
    (_patch(qcow2(backing=b"base"), 8, ">Q", 1 << 40), "outside the header cluster"),
    (_patch(qcow2(backing=b"base"), 8, ">Q", 8), "outside the header cluster"),
    (_patch(qcow2(backing=b"base"), 16, ">I", 1024), "backing_file_size 1024"),
    (_patch(qcow2(backing=b"base"), 16, ">I", 0), "backing_file_size 0"),
    (qcow2(header_length=100), "header_length"),
    (qcow2(header_length=108), "header_length"),
    (_patch(qcow2(), 100, ">I", 1 << 20), "header_length"),
    (qcow2(incompat=1 << 5), "unknown incompatible features"),
    (qcow2(extensions=((0xE2792ACA, b"raw"),))[:104] + struct.pack(">II", 7, 1 << 16),
     "overruns"),
    (_patch(qcow2(), 32, ">I", 3), "encryption"),
    (_patch(qcow2(), 96, ">I", 7), "refcount_order"),
    (_patch(qcow2(), 24, ">Q", 1 << 63), "impossible virtual size"),
    (qcow2()[:50], "truncated"),
    (qcow2(2)[:71], "truncated"),
    (qcow2(3)[:103], "truncated"),
])
def test_corrupt_qcow2_headers_are_refused(data: bytes, message: str) -> None:
    with pytest.raises(InspectError, match=message):
        inspect(data)


def test_inspect_error_is_a_domain_invalid() -> None:
    assert issubclass(InspectError, Invalid)


# ---------------------------------------------------------------------------------- iso
def test_iso_declared_iso_is_accepted_with_its_volume_size() -> None:
    info = inspect(iso(blocks=1000))
    assert info == ImageInfo("iso", 1000 * 2048)
    check_safe(info, "iso")


def test_iso_declared_qcow2_is_refused() -> None:
    with pytest.raises(Invalid, match="iso format, but its disk_format is qcow2"):
        check_safe(inspect(iso()), "qcow2")


@pytest.mark.parametrize("declared", ["raw", "ami", "aki", "ari"])
def test_iso_content_is_acceptable_as_raw(declared: str) -> None:
    check_safe(inspect(iso()), declared)


def test_raw_declared_iso_is_refused() -> None:
    with pytest.raises(Invalid):
        check_safe(inspect(bytes(1 << 16)), "iso")


def test_iso_boot_record_before_the_primary_descriptor() -> None:
    data = bytearray(iso(blocks=7))
    boot = (b"\x00CD001\x01" + b"EL TORITO SPECIFICATION").ljust(2048, b"\0")
    data[0x8000:0x8000] = boot
    assert inspect(bytes(data)) == ImageInfo("iso", 7 * 2048)


def test_udf_image_takes_the_file_size() -> None:
    data = bytes(0x8000) + b"\x00BEA01\x01".ljust(2048, b"\0") + b"\x00NSR02\x01" + bytes(4000)
    assert inspect(data) == ImageInfo("iso", len(data))


@pytest.mark.parametrize("data", [iso(big_endian_blocks=5), iso(block_size=4096),
                                  iso()[:0x8000 + 100]])
def test_corrupt_iso_is_refused(data: bytes) -> None:
    with pytest.raises(InspectError):
        inspect(data)


def test_iso_signature_inside_a_qcow2_does_not_hide_it() -> None:
    data = bytearray(qcow2(cluster_bits=16))
    data[0x8000:0x8000 + len(iso()) - 0x8000] = iso()[0x8000:]
    assert inspect(bytes(data)).format == "qcow2"


# --------------------------------------------------------------------------------- vmdk
def test_vmdk_monolithic_sparse() -> None:
    info = inspect(vmdk_sparse(2097152))
    assert info == ImageInfo("vmdk", GiB)
    check_safe(info, "vmdk")


def test_vmdk_stream_optimized() -> None:
    data = vmdk_sparse(descriptor=vmdk_descriptor("streamOptimized"), version=3)
    assert inspect(data) == ImageInfo("vmdk", GiB)


@pytest.mark.parametrize("descriptor", [
    vmdk_descriptor(extra='parentCID=12345678\nparentFileNameHint="base.vmdk"'),
    vmdk_descriptor("twoGbMaxExtentSparse",
                    'RW 4192256 SPARSE "d-s001.vmdk"\nRW 4192256 SPARSE "d-s002.vmdk"'),
    vmdk_descriptor(extents='RW 2097152 FLAT "/dev/sda" 0'),
])
def test_sparse_vmdk_that_refers_to_other_files_is_unsafe(descriptor: bytes) -> None:
    info = inspect(vmdk_sparse(descriptor=descriptor))
    assert info.backing_file
    with pytest.raises(Invalid):
        check_safe(info, "vmdk")


def test_vmdk_descriptor_file_refers_to_other_files() -> None:
    data = vmdk_descriptor("monolithicFlat", 'RW 20480 FLAT "/etc/shadow" 0\nRW 100 ZERO')
    info = inspect(data)
    assert info == ImageInfo("vmdk", 20580 * 512, backing_file=True)
    with pytest.raises(Invalid, match="vmdk format, but its disk_format is raw"):
        check_safe(info, "raw")


def test_vmdk_descriptor_detected_after_comments_and_blank_lines() -> None:
    data = b"# comment\n   \r\n#another\nversion=1\nRW 8 ZERO\n"
    assert inspect(data) == ImageInfo("vmdk", 8 * 512)


@pytest.mark.parametrize(("data", "message"), [
    (vmdk_sparse(version=4), "version 4"),
    (vmdk_sparse(desc_sector=0), "no descriptor"),
    (vmdk_sparse(desc_sector=1 << 60), "beyond"),
    (vmdk_sparse(desc_sectors=1 << 60), "beyond"),
    (vmdk_sparse(descriptor=vmdk_descriptor() + b"rm -rf /\n"), "unrecognised line"),
    (vmdk_sparse(descriptor=b"version=1\n\xff\xfe\n"), "not text"),
    (vmdk_sparse(descriptor=vmdk_descriptor(extents="")), "no extents"),
    (vmdk_sparse(descriptor=vmdk_descriptor(extents="RW 8 MAGIC")), "extent type 'MAGIC'"),
    (vmdk_sparse(descriptor=vmdk_descriptor(extents="RW " + "9" * 5000 + " SPARSE")),
     "unrecognised line"),
    (vmdk_sparse()[:1000], "truncated"),
    (vmdk_sparse(1 << 60), "impossible virtual size"),
    (b"version=1\nRW 8 ZERO\n" + bytes(HEADER_BYTES), "larger than"),
    (b"COWD" + bytes(1000), "COWD"),
])
def test_corrupt_vmdk_is_refused(data: bytes, message: str) -> None:
    with pytest.raises(InspectError, match=message):
        inspect(data)


# ---------------------------------------------------------------------- vhd, vhdx, vdi
def test_dynamic_vhd() -> None:
    info = inspect(vhd(3, 10 * GiB))
    assert info == ImageInfo("vhd", 10 * GiB)
    check_safe(info, "vhd")


def test_differencing_vhd_is_unsafe() -> None:
    assert inspect(vhd(4)).backing_file


@pytest.mark.parametrize("data", [vhd(5), vhd()[:300]])
def test_corrupt_vhd_is_refused(data: bytes) -> None:
    with pytest.raises(InspectError):
        inspect(data)


def test_vhdx_is_detected_with_unknown_size() -> None:
    info = inspect(b"vhdxfile" + bytes(1 << 18))
    assert info == ImageInfo("vhdx", 0)
    check_safe(info, "vhdx")
    with pytest.raises(Invalid):
        check_safe(info, "vhd")


def test_vdi() -> None:
    info = inspect(vdi(size=3 * GiB))
    assert info == ImageInfo("vdi", 3 * GiB)
    check_safe(info, "vdi")


@pytest.mark.parametrize("data", [vdi(image_type=4), vdi(image_type=3), vdi(parent=b"p" * 16)])
def test_vdi_that_depends_on_another_image_is_unsafe(data: bytes) -> None:
    assert inspect(data).backing_file


@pytest.mark.parametrize("data", [vdi(image_type=9), _patch(vdi(), 68, "<I", 0x10000),
                                  vdi()[:400]])
def test_corrupt_vdi_is_refused(data: bytes) -> None:
    with pytest.raises(InspectError):
        inspect(data)


# ------------------------------------------------------------------------ other formats
@pytest.mark.parametrize("magic", [b"QED\x00", b"LUKS\xba\xbe"])
def test_formats_recognised_only_to_be_refused(magic: bytes) -> None:
    with pytest.raises(InspectError, match="not supported"):
        inspect(magic + bytes(4096))


def test_a_header_matching_two_formats_is_refused() -> None:
    data = bytearray(qcow2())
    data[64:68] = struct.pack("<I", 0xBEDA107F)
    with pytest.raises(InspectError, match="several formats: qcow2, vdi"):
        inspect(bytes(data))


# ---------------------------------------------------------------------------- check_safe
@pytest.mark.parametrize(("detected", "declared", "accepted"), [
    ("raw", "raw", True), ("raw", "ami", True), ("raw", "aki", True), ("raw", "ari", True),
    ("iso", "iso", True), ("iso", "raw", True), ("raw", "iso", False),
    ("qcow2", "raw", False), ("qcow2", "ami", False), ("qcow2", "aki", False),
    ("vmdk", "raw", False), ("vhd", "raw", False), ("vhdx", "raw", False),
    ("vdi", "raw", False), ("raw", "vmdk", False), ("raw", "vhd", False),
    ("raw", "vhdx", False), ("raw", "vdi", False), ("vhd", "vhdx", False),
    ("qcow2", "qcow2", True), ("vmdk", "vmdk", True), ("vhd", "vhd", True),
    ("vhdx", "vhdx", True), ("vdi", "vdi", True),
])
def test_declared_format_rules(detected: str, declared: str, accepted: bool) -> None:
    info = ImageInfo(detected, GiB)
    if accepted:
        check_safe(info, declared)
    else:
        with pytest.raises(Invalid, match="but its disk_format is"):
            check_safe(info, declared)


@pytest.mark.parametrize("declared", ["ploop", "qed", "QCOW2", ""])
def test_unknown_declared_formats_are_refused(declared: str) -> None:
    with pytest.raises(Invalid, match="is not supported"):
        check_safe(ImageInfo("raw", 1), declared)


# ------------------------------------------------------------------- real qemu-img images
def qemu_img_create(tmp_path: Path, fmt: str, *options: str, size: str = "64M") -> Path:
    assert QEMU_IMG is not None
    path = tmp_path / f"disk.{fmt}"
    subprocess.run([QEMU_IMG, "create", "-q", "-f", fmt, *options, str(path), size],
                   check=True, capture_output=True, cwd=tmp_path, timeout=30)
    return path


def inspect_file(path: Path) -> ImageInfo:
    with path.open("rb") as f:
        head = f.read(HEADER_BYTES)
    return inspect_header(head, path.stat().st_size)


def qemu_virtual_size(path: Path) -> int:
    assert QEMU_IMG is not None
    out = subprocess.run([QEMU_IMG, "info", "--output=json", str(path)], check=True,
                         capture_output=True, timeout=30).stdout
    size: int = json.loads(out)["virtual-size"]
    return size


@needs_qemu_img
@pytest.mark.parametrize(("fmt", "options", "expected"), [
    ("raw", (), "raw"),
    ("qcow2", ("-o", "compat=0.10"), "qcow2"),
    ("qcow2", ("-o", "compat=1.1"), "qcow2"),
    ("qcow2", ("-o", "cluster_size=2M"), "qcow2"),
    ("vmdk", (), "vmdk"),
    ("vmdk", ("-o", "subformat=streamOptimized"), "vmdk"),
    ("vpc", (), "vhd"),
    ("vdi", (), "vdi"),
])
def test_qemu_img_images_agree_with_qemu(tmp_path: Path, fmt: str, options: tuple[str, ...],
                                        expected: str) -> None:
    path = qemu_img_create(tmp_path, fmt, *options)
    info = inspect_file(path)
    assert info == ImageInfo(expected, qemu_virtual_size(path))
    check_safe(info, expected)


@needs_qemu_img
def test_qemu_img_vhdx(tmp_path: Path) -> None:
    assert inspect_file(qemu_img_create(tmp_path, "vhdx")) == ImageInfo("vhdx", 0)


@needs_qemu_img
def test_qemu_img_fixed_vhd_reads_as_raw(tmp_path: Path) -> None:
    # The footer is only at the end; qemu probes it as raw too.
    assert inspect_file(qemu_img_create(tmp_path, "vpc", "-o", "subformat=fixed")).format == "raw"


@needs_qemu_img
def test_qemu_img_qcow2_with_backing_file(tmp_path: Path) -> None:
    qemu_img_create(tmp_path, "raw", size="1M")
    path = tmp_path / "overlay.qcow2"
    assert QEMU_IMG is not None
    subprocess.run([QEMU_IMG, "create", "-q", "-f", "qcow2", "-b", "disk.raw", "-F", "raw",
                    str(path)], check=True, capture_output=True, cwd=tmp_path, timeout=30)
    info = inspect_file(path)
    assert info.backing_file
    for declared in ("qcow2", "raw"):
        with pytest.raises(Invalid):
            check_safe(info, declared)


@needs_qemu_img
def test_qemu_img_qcow2_with_data_file(tmp_path: Path) -> None:
    info = inspect_file(qemu_img_create(tmp_path, "qcow2", "-o", "data_file=data.raw"))
    assert info.data_file


@needs_qemu_img
@pytest.mark.parametrize("subformat", ["monolithicFlat", "twoGbMaxExtentSparse"])
def test_qemu_img_multi_file_vmdk_is_unsafe(tmp_path: Path, subformat: str) -> None:
    info = inspect_file(qemu_img_create(tmp_path, "vmdk", "-o", f"subformat={subformat}"))
    assert info.format == "vmdk" and info.backing_file


@needs_qemu_img
def test_qemu_img_qed_is_refused(tmp_path: Path) -> None:
    with pytest.raises(InspectError):
        inspect_file(qemu_img_create(tmp_path, "qed"))


# -------------------------------------------------------------------------- properties
_MAGICS = [b"", b"QFI\xfb\x00\x00\x00\x02", b"QFI\xfb\x00\x00\x00\x03", b"KDMV\x01\x00\x00\x00",
           b"version=1\n", b"conectix", b"vhdxfile", b"COWD", vdi()[:80]]


@settings(max_examples=200, deadline=None, database=None)
@given(magic=st.sampled_from(_MAGICS), body=st.binary(max_size=2048),
       iso_tail=st.none() | st.binary(max_size=2100), larger_by=st.none() | st.integers(0, 1 << 40))
def test_arbitrary_bytes_raise_only_inspect_error(magic: bytes, body: bytes,
                                                  iso_tail: bytes | None,
                                                  larger_by: int | None) -> None:
    data = magic + body
    if iso_tail is not None:
        data = data.ljust(0x8000, b"\0") + b"\x01CD001" + iso_tail
    total = len(data)
    if larger_by is not None:                # the head of a file longer than HEADER_BYTES
        data = data.ljust(HEADER_BYTES, b"\0")
        total = HEADER_BYTES + larger_by
    try:
        info = inspect_header(data, total)
    except InspectError:
        return
    assert 0 <= info.virtual_size < 1 << 63


_VALID = [qcow2(2, backing=b"b"), qcow2(extensions=((0x44415441, b"d"),)), vmdk_sparse(),
          vhd(), vdi(), iso(), vmdk_descriptor()]


@settings(max_examples=200, deadline=None, database=None)
@given(base=st.sampled_from(_VALID),
       edits=st.lists(st.tuples(st.integers(0, 1100), st.binary(min_size=1, max_size=8)),
                      max_size=6))
def test_mutated_headers_raise_only_inspect_error(base: bytes,
                                                   edits: list[tuple[int, bytes]]) -> None:
    data = bytearray(base)
    for offset, chunk in edits:
        data[offset:offset + len(chunk)] = chunk
    try:
        inspect(bytes(data))
    except InspectError:
        pass
