"""What an uploaded disk image really is, read defensively from its first bytes.

A user names an image's ``disk_format``, but the hypervisor's tools (qemu) look at the
bytes. A qcow2 file uploaded as ``raw`` whose header names a backing file such as
``/etc/shadow`` is the classic attack (OSSA-2024-001, CVE-2024-32498): anything that later
probes the format follows the header out of the image. So the upload path reads the head
of the data, asks :func:`inspect_header` what it is, and :func:`check_safe` refuses images
that refer to other files or whose content does not match the declared format.

Everything here is pure: it reads only the bytes it is given. Every offset and length
taken from a header is bounded by the bytes at hand and by the limits qemu itself
enforces; a header that breaks them raises :class:`InspectError`, never ``struct.error``,
``IndexError`` or ``UnicodeDecodeError``.

What the first :data:`HEADER_BYTES` (64 KiB) can tell, per format:

=======  ==========================================  =====================================
format   detected by                                 virtual size
=======  ==========================================  =====================================
qcow2    ``QFI\\xfb`` at 0 (versions 2 and 3)         big-endian u64 at 24
vmdk     ``KDMV`` at 0 (sparse extent with an        sparse: capacity (sectors, LE u64 at
         embedded descriptor), or a text descriptor  12); descriptor file: sum of extents
         (comment lines, then ``version=N``)
vhd      ``conectix`` at 0: the footer copy that     "current size", big-endian u64 at 48
         opens a dynamic or differencing VHD. A
         fixed VHD keeps its footer only at the end,
         so it reads as raw, as qemu probes it too.
vhdx     ``vhdxfile`` at 0                           0 = unknown: VHDX keeps it in a
                                                     metadata region megabytes into the file
vdi      ``0xbeda107f`` (LE) at 64                   LE u64 at 368
iso      ``CD001`` (ISO 9660) or ``BEA01``/``NSR0x``  ISO 9660 primary volume descriptor;
         (UDF) at 0x8001, sector 16                  the file size for pure UDF
raw      anything else, including MBR/GPT disks      the file size
=======  ==========================================  =====================================

A file that matches two of the header formats above is refused as ambiguous. An ISO
signature inside a file that also carries one of those headers loses: qemu has no ISO
driver (it reads an ISO as raw), so the header is what a hypervisor would act on.
QED, LUKS and VMware 3 (``COWD``) headers are recognised only to be refused.
"""

from __future__ import annotations

import re
import struct
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from strato.domain.errors import Invalid

__all__ = ["HEADER_BYTES", "ImageInfo", "InspectError", "check_safe", "inspect_header"]

#: How many leading bytes :func:`inspect_header` needs: the ISO 9660 volume descriptors
#: start at 0x8000 (the primary one fills 0x8000-0x87ff), and 64 KiB holds the whole first
#: cluster of a qcow2 image with the default cluster size, plus a VMDK's embedded
#: descriptor (qemu-img and VMware put it in sectors 1-20).
HEADER_BYTES = 64 * 1024

# Sizes are stored as signed 64-bit integers downstream (SQL BIGINT).
_MAX_VIRTUAL_SIZE = 2**63 - 1
_SECTOR = 512


@dataclass(frozen=True, slots=True)
class ImageInfo:
    """What :func:`inspect_header` found.

    ``virtual_size`` is the guest-visible disk size in bytes (the file size for raw; 0
    when the head cannot tell, which only happens for VHDX). ``backing_file`` is true
    when the image refers to any other file: a qcow2 backing file, a VMDK parent or a
    VMDK extent in another file, a differencing VHD or VDI. ``data_file`` is true for a
    qcow2 image whose guest data lives in an external data file.
    """

    format: str
    virtual_size: int
    backing_file: bool = False
    data_file: bool = False


class InspectError(Invalid):
    """The image's header is corrupt, truncated, ambiguous or of an unsupported kind."""


def inspect_header(head: bytes, total_size: int) -> ImageInfo:
    """Detect the format and virtual size of an image from its first bytes.

    ``head`` is the start of the image: at least ``min(HEADER_BYTES, total_size)`` bytes
    (bytes past :data:`HEADER_BYTES` are ignored). ``total_size`` is the whole image's
    length in bytes. An empty image is raw with a virtual size of 0.

    Raises :class:`InspectError` for a header that is corrupt, truncated, ambiguous or
    unsupported, and ``ValueError`` when ``head`` and ``total_size`` disagree (a bug in
    the caller, not in the image).
    """
    _check_arguments(head, total_size)
    head = head[:HEADER_BYTES]
    matches = [name for name, probe in _PROBES if probe(head)]
    if len(matches) > 1:
        raise InspectError(f"The image header matches several formats: {', '.join(matches)}.")
    if matches:
        info = _PARSERS[matches[0]](head, total_size)
    elif _looks_like_iso(head):
        info = _parse_iso(head, total_size)
    else:
        info = ImageInfo("raw", total_size)
    if not 0 <= info.virtual_size <= _MAX_VIRTUAL_SIZE:
        raise InspectError(f"The {info.format} header declares an impossible virtual size "
                           f"({info.virtual_size} bytes).")
    return info


def _check_arguments(head: bytes, total_size: int) -> None:
    if len(head) > total_size:
        raise ValueError(f"head has {len(head)} bytes but total_size is {total_size}")
    if len(head) < min(HEADER_BYTES, total_size):
        raise ValueError(f"head must hold the first {min(HEADER_BYTES, total_size)} bytes "
                         f"of the image, it has {len(head)}")


# Formats each declared disk_format accepts. qemu reads an ISO as raw, so raw and the
# EC2-style kernel/ramdisk/machine images may contain one (an isohybrid live image is
# meant to be written to a disk byte for byte); Nova is stricter and refuses that.
_RAW_CONTENT = frozenset({"raw", "iso"})
_ACCEPTED: dict[str, frozenset[str]] = {
    "raw": _RAW_CONTENT, "aki": _RAW_CONTENT, "ari": _RAW_CONTENT, "ami": _RAW_CONTENT,
    **{name: frozenset({name}) for name in ("iso", "qcow2", "vmdk", "vhd", "vhdx", "vdi")},
}


def check_safe(info: ImageInfo, declared_disk_format: str) -> None:
    """Refuse an image that a hypervisor could not use safely as ``declared_disk_format``.

    Raises :class:`~strato.domain.errors.Invalid` when the declared format is unknown,
    when the content is of another format (a qcow2 declared ``raw``, a raw file declared
    ``qcow2``; raw and the ``aki``/``ari``/``ami`` formats accept raw or ISO content, every
    other format accepts only itself), or when the image refers to another file (backing
    file, parent disk, external extent or qcow2 external data file).
    """
    accepted = _ACCEPTED.get(declared_disk_format)
    if accepted is None:
        raise Invalid(f"disk_format {declared_disk_format!r} is not supported; use one of "
                      f"{', '.join(sorted(_ACCEPTED))}.")
    if info.format not in accepted:
        raise Invalid(f"The image data is in {info.format} format, but its disk_format is "
                      f"{declared_disk_format}.")
    if info.backing_file:
        raise Invalid(f"The {info.format} image refers to a backing file or parent disk; "
                      "only self-contained images are accepted.")
    if info.data_file:
        raise Invalid(f"The {info.format} image keeps its data in an external data file; "
                      "only self-contained images are accepted.")


def _field(head: bytes, fmt: str, offset: int) -> int:
    """The integer ``fmt`` (one ``struct`` code) at ``offset``, or InspectError if the
    header is too short to hold it."""
    end = offset + struct.calcsize(fmt)
    if end > len(head):
        raise InspectError(f"The image header is truncated: a field at offset {offset} "
                           f"needs {end} bytes, the image has {len(head)}.")
    value: int = struct.unpack_from(fmt, head, offset)[0]
    return value


def _require(head: bytes, size: int, what: str) -> None:
    if len(head) < size:
        raise InspectError(f"The {what} is truncated: it needs {size} bytes, the image "
                           f"has {len(head)}.")


# ---------------------------------------------------------------------------- qcow2
# Header layout: docs/interop/qcow2.txt in qemu. All fields are big-endian.
_QCOW2_V2_HEADER = 72
_QCOW2_V3_MIN_HEADER = 104
_QCOW2_MIN_CLUSTER_BITS, _QCOW2_MAX_CLUSTER_BITS = 9, 21   # qemu's limits
_QCOW2_MAX_BACKING_NAME = 1023                             # qemu's limit
_QCOW2_MAX_CRYPT_METHOD = 2                                # none, AES, LUKS
_QCOW2_MAX_REFCOUNT_ORDER = 6
# Incompatible feature bits: 0 dirty, 1 corrupt, 2 external data file, 3 compression
# type, 4 extended L2. qemu refuses images with any other bit set, and so do we: we
# cannot tell what an unknown feature would make a reader do.
_QCOW2_INCOMPAT_DATA_FILE = 1 << 2
_QCOW2_INCOMPAT_KNOWN = (1 << 5) - 1
_QCOW2_EXT_END = 0
_QCOW2_EXT_DATA_FILE = 0x44415441    # "DATA": the external data file's name


def _parse_qcow2(head: bytes, total_size: int) -> ImageInfo:
    version = _field(head, ">I", 4)
    if version not in (2, 3):
        raise InspectError(f"qcow2 version {version} is not supported (only 2 and 3).")
    cluster_size = _qcow2_cluster_size(head)
    header_length = _qcow2_header_length(head, version, cluster_size)
    if _field(head, ">I", 32) > _QCOW2_MAX_CRYPT_METHOD:
        raise InspectError("The qcow2 header names an unknown encryption method.")
    backing_offset = _qcow2_backing_offset(head, header_length, cluster_size)
    features = _qcow2_incompatible_features(head, version)
    # qemu uses a data file only when the feature bit is set, but a "DATA" extension
    # without it is at best corrupt: refuse both.
    extensions = set(_qcow2_extensions(head, header_length, backing_offset or cluster_size))
    data_file = bool(features & _QCOW2_INCOMPAT_DATA_FILE) or _QCOW2_EXT_DATA_FILE in extensions
    return ImageInfo("qcow2", _field(head, ">Q", 24), backing_file=backing_offset != 0,
                     data_file=data_file)


def _qcow2_cluster_size(head: bytes) -> int:
    bits = _field(head, ">I", 20)
    if not _QCOW2_MIN_CLUSTER_BITS <= bits <= _QCOW2_MAX_CLUSTER_BITS:
        raise InspectError(f"qcow2 cluster_bits {bits} is out of range "
                           f"({_QCOW2_MIN_CLUSTER_BITS}-{_QCOW2_MAX_CLUSTER_BITS}).")
    return 1 << bits


def _qcow2_header_length(head: bytes, version: int, cluster_size: int) -> int:
    """The header's length: fixed for version 2, a field for version 3 that must cover
    the v3 fields, be a multiple of 8 and fit in the first cluster."""
    if version == 2:
        _require(head, _QCOW2_V2_HEADER, "qcow2 header")
        return _QCOW2_V2_HEADER
    _require(head, _QCOW2_V3_MIN_HEADER, "qcow2 header")
    length = _field(head, ">I", 100)
    if length < _QCOW2_V3_MIN_HEADER or length % 8 or length > cluster_size:
        raise InspectError(f"qcow2 header_length {length} is invalid.")
    if _field(head, ">I", 96) > _QCOW2_MAX_REFCOUNT_ORDER:
        raise InspectError("qcow2 refcount_order is out of range (0-6).")
    return length


def _qcow2_backing_offset(head: bytes, header_length: int, cluster_size: int) -> int:
    """Where the backing file's name starts (0: no backing file). The name must lie
    after the header and inside the first cluster, as qemu requires."""
    offset = _field(head, ">Q", 8)
    if offset == 0:
        return 0
    size = _field(head, ">I", 16)
    if not 1 <= size <= _QCOW2_MAX_BACKING_NAME:
        raise InspectError(f"qcow2 backing_file_size {size} is out of range "
                           f"(1-{_QCOW2_MAX_BACKING_NAME}).")
    if offset < header_length or offset + size > cluster_size:
        raise InspectError(f"qcow2 backing_file_offset {offset} lies outside the header "
                           "cluster.")
    return offset


def _qcow2_incompatible_features(head: bytes, version: int) -> int:
    if version == 2:
        return 0
    features = _field(head, ">Q", 72)
    if features & ~_QCOW2_INCOMPAT_KNOWN:
        raise InspectError(f"The qcow2 image uses unknown incompatible features "
                           f"(0x{features & ~_QCOW2_INCOMPAT_KNOWN:x}).")
    return features


def _qcow2_extensions(head: bytes, start: int, end: int) -> Iterator[int]:
    """The types of the header extensions between ``start`` and ``end`` (the backing
    file name or the end of the first cluster), as far as ``head`` reaches.

    Each extension is (u32 type, u32 length, data padded to 8 bytes); type 0 ends the
    list. The offset grows by at least 8 bytes a step, so the walk always ends.
    """
    offset, visible = start, min(end, len(head))
    while offset + 8 <= visible:
        ext_type, length = struct.unpack_from(">II", head, offset)
        if ext_type == _QCOW2_EXT_END:
            return
        offset += 8
        if length > end - offset:
            raise InspectError(f"qcow2 header extension 0x{ext_type:08x} overruns the "
                               "header cluster.")
        yield ext_type
        offset += (length + 7) & ~7


# ----------------------------------------------------------------------------- vmdk
_VMDK_SPARSE_VERSIONS = (1, 2, 3)
_VMDK_SELF_CONTAINED = frozenset({"monolithicsparse", "streamoptimized"})
_VMDK_NO_PARENT = "ffffffff"
# The extent types VMware documents; qemu opens all but the two raw-device mappings.
_VMDK_EXTENT_KINDS = frozenset({"sparse", "flat", "zero", "vmfs", "vmfssparse", "sesparse",
                                "vmfsrdm", "vmfsraw"})
# qemu probes a text descriptor within its 2 KiB probe buffer: comment and blank lines,
# then "version=1", "=2" or "=3". Accepting a little more than qemu is the safe side.
_VMDK_PROBE_BYTES = 2048
_VMDK_VERSION_LINES = (b"version=1", b"version=2", b"version=3")
# An extent line: access, size in sectors, type, then an optional "file name" and
# offset. Digit runs are bounded so int() never meets an absurd number.
_VMDK_EXTENT = re.compile(
    r'(?i)(rw|rdonly|noaccess)\s+(\d{1,20})\s+([a-z]+)(?:\s+"([^"]*)"(?:\s+\d{1,20})?)?')


@dataclass(frozen=True, slots=True)
class _VmdkExtent:
    sectors: int
    kind: str          # lower case: sparse, flat, zero, vmfs, vmfssparse, ...
    has_file: bool


@dataclass(frozen=True, slots=True)
class _VmdkDescriptor:
    create_type: str   # lower case
    has_parent: bool
    extents: tuple[_VmdkExtent, ...]


def _looks_like_vmdk(head: bytes) -> bool:
    if head.startswith((b"KDMV", b"COWD")):
        return True
    for raw_line in head[:_VMDK_PROBE_BYTES].split(b"\n"):
        line = raw_line.strip(b" \t\r")
        if line and not line.startswith(b"#"):
            return line in _VMDK_VERSION_LINES
    return False


def _parse_vmdk(head: bytes, total_size: int) -> ImageInfo:
    if head.startswith(b"KDMV"):
        return _parse_vmdk_sparse(head)
    if head.startswith(b"COWD"):
        raise InspectError("VMware 3 (COWD) VMDK images are not supported.")
    return _parse_vmdk_descriptor_file(head, total_size)


def _parse_vmdk_sparse(head: bytes) -> ImageInfo:
    """A hosted sparse extent (monolithicSparse, streamOptimized ...): a little-endian
    header, then the text descriptor it embeds, which must be within the head."""
    version = _field(head, "<I", 4)
    if version not in _VMDK_SPARSE_VERSIONS:
        raise InspectError(f"VMDK sparse version {version} is not supported.")
    capacity = _field(head, "<Q", 12)
    start = _field(head, "<Q", 28) * _SECTOR
    end = start + _field(head, "<Q", 36) * _SECTOR
    if start == 0 or end == start:
        raise InspectError("The VMDK extent embeds no descriptor: it is one piece of a "
                           "multi-file disk.")
    if end > HEADER_BYTES:
        raise InspectError(f"The VMDK descriptor lies beyond the first {HEADER_BYTES} bytes.")
    _require(head, end, "VMDK descriptor")
    desc = _parse_vmdk_descriptor(head[start:end])
    # Any other layout spreads the disk over several files (twoGbMaxExtentSparse ...).
    external = (desc.has_parent or desc.create_type not in _VMDK_SELF_CONTAINED
                or [e.kind for e in desc.extents] != ["sparse"])
    return ImageInfo("vmdk", capacity * _SECTOR, backing_file=external)


def _parse_vmdk_descriptor_file(head: bytes, total_size: int) -> ImageInfo:
    """A bare text descriptor: every extent with a file name points at another file."""
    if total_size > len(head):
        raise InspectError(f"The VMDK descriptor file is larger than {HEADER_BYTES} bytes.")
    desc = _parse_vmdk_descriptor(head)
    external = desc.has_parent or any(e.has_file for e in desc.extents)
    size = sum(e.sectors for e in desc.extents) * _SECTOR
    return ImageInfo("vmdk", size, backing_file=external)


def _parse_vmdk_descriptor(data: bytes) -> _VmdkDescriptor:
    """Parse descriptor text cautiously: every line must be a comment, a ``ddb.`` entry,
    a ``key=value`` header field or an extent; anything else is refused."""
    try:
        text = data.split(b"\x00", 1)[0].decode("utf-8")
    except UnicodeDecodeError:
        raise InspectError("The VMDK descriptor is not text.") from None
    fields: dict[str, str] = {}
    extents: list[_VmdkExtent] = []
    for raw_line in text.splitlines():
        line = raw_line.strip()
        if not line or line.startswith("#") or line.lower().startswith("ddb."):
            continue
        if extent := _VMDK_EXTENT.fullmatch(line):
            extents.append(_vmdk_extent(extent))
        elif "=" in line and " " not in (key := line.split("=", 1)[0].strip()):
            fields[key.lower()] = line.split("=", 1)[1].strip().strip('"')
        else:
            raise InspectError(f"The VMDK descriptor has an unrecognised line: {line[:60]!r}.")
    if not extents:
        raise InspectError("The VMDK descriptor lists no extents.")
    has_parent = ("parentfilenamehint" in fields
                  or fields.get("parentcid", _VMDK_NO_PARENT).lower() != _VMDK_NO_PARENT)
    return _VmdkDescriptor(fields.get("createtype", "").lower(), has_parent, tuple(extents))


def _vmdk_extent(match: re.Match[str]) -> _VmdkExtent:
    kind = match[3].lower()
    if kind not in _VMDK_EXTENT_KINDS:
        raise InspectError(f"VMDK extent type {match[3][:20]!r} is not supported.")
    return _VmdkExtent(int(match[2]), kind, has_file=match[4] is not None)


# ------------------------------------------------------------------------------ vhd
_VHD_FOOTER = 512
_VHD_FIXED, _VHD_DYNAMIC, _VHD_DIFFERENCING = 2, 3, 4


def _parse_vhd(head: bytes, total_size: int) -> ImageInfo:
    """The big-endian footer copy at the start of a dynamic or differencing VHD."""
    _require(head, _VHD_FOOTER, "VHD footer")
    disk_type = _field(head, ">I", 60)
    if disk_type not in (_VHD_FIXED, _VHD_DYNAMIC, _VHD_DIFFERENCING):
        raise InspectError(f"VHD disk type {disk_type} is not supported.")
    return ImageInfo("vhd", _field(head, ">Q", 48),
                     backing_file=disk_type == _VHD_DIFFERENCING)


def _parse_vhdx(head: bytes, total_size: int) -> ImageInfo:
    # The size (and a differencing disk's parent) sit in the metadata region, which
    # qemu-img places 2 MiB in: out of reach. qemu refuses differencing VHDX anyway.
    return ImageInfo("vhdx", 0)


# ------------------------------------------------------------------------------ vdi
_VDI_SIGNATURE = b"\x7f\x10\xda\xbe"       # 0xbeda107f, little-endian, at offset 64
_VDI_VERSION_1_1 = 0x00010001
_VDI_HEADER_END = 456                      # pre-header (72) + the version 1 header (384)
_VDI_NORMAL, _VDI_FIXED, _VDI_UNDO, _VDI_DIFF = 1, 2, 3, 4
_VDI_NULL_UUID = bytes(16)


def _parse_vdi(head: bytes, total_size: int) -> ImageInfo:
    """The little-endian VirtualBox header; undo and differencing images, or any that
    names a linked or parent image, depend on another file."""
    _require(head, _VDI_HEADER_END, "VDI header")
    version = _field(head, "<I", 68)
    if version != _VDI_VERSION_1_1:
        raise InspectError(f"VDI version 0x{version:08x} is not supported (only 1.1).")
    image_type = _field(head, "<I", 76)
    if image_type not in (_VDI_NORMAL, _VDI_FIXED, _VDI_UNDO, _VDI_DIFF):
        raise InspectError(f"VDI image type {image_type} is not supported.")
    linked = head[424:440] != _VDI_NULL_UUID or head[440:456] != _VDI_NULL_UUID
    return ImageInfo("vdi", _field(head, "<Q", 368),
                     backing_file=linked or image_type in (_VDI_UNDO, _VDI_DIFF))


# ------------------------------------------------------------------------------ iso
_ISO_FIRST_DESCRIPTOR = 0x8000             # sector 16 of 2048-byte sectors
_ISO_SECTOR = 2048
_ISO_PRIMARY, _ISO_TERMINATOR = 1, 255
_ISO_9660_ID = b"CD001"
_ISO_FIRST_IDS = frozenset({_ISO_9660_ID, b"BEA01", b"NSR02", b"NSR03"})  # + UDF


def _looks_like_iso(head: bytes) -> bool:
    at = _ISO_FIRST_DESCRIPTOR + 1
    return head[at:at + 5] in _ISO_FIRST_IDS


def _parse_iso(head: bytes, total_size: int) -> ImageInfo:
    """Size from the ISO 9660 primary volume descriptor if the head holds one (blocks
    times block size, both stored twice: little- then big-endian); else the file size
    (a pure UDF image keeps its size elsewhere)."""
    for offset in _iso_9660_descriptors(head):
        if head[offset] == _ISO_PRIMARY:
            return ImageInfo("iso", _iso_volume_size(head, offset))
    return ImageInfo("iso", total_size)


def _iso_9660_descriptors(head: bytes) -> Iterator[int]:
    """Offsets of the ISO 9660 volume descriptors in ``head``, up to the terminator."""
    for offset in range(_ISO_FIRST_DESCRIPTOR, len(head), _ISO_SECTOR):
        if head[offset + 1:offset + 6] != _ISO_9660_ID or head[offset] == _ISO_TERMINATOR:
            return
        yield offset


def _iso_volume_size(head: bytes, pvd: int) -> int:
    blocks = _field(head, "<I", pvd + 80)
    block_size = _field(head, "<H", pvd + 128)
    if blocks != _field(head, ">I", pvd + 84) or block_size != _field(head, ">H", pvd + 130):
        raise InspectError("The ISO 9660 primary volume descriptor is inconsistent.")
    if block_size not in (512, 1024, 2048):
        raise InspectError(f"ISO 9660 logical block size {block_size} is invalid.")
    return blocks * block_size


# ---------------------------------------------------------------------- dispatching
def _refuse(name: str) -> Callable[[bytes, int], ImageInfo]:
    def parse(head: bytes, total_size: int) -> ImageInfo:
        raise InspectError(f"{name} images are not supported.")
    return parse


_PROBES: tuple[tuple[str, Callable[[bytes], bool]], ...] = (
    ("qcow2", lambda head: head.startswith(b"QFI\xfb")),
    ("vmdk", _looks_like_vmdk),
    ("vhd", lambda head: head.startswith(b"conectix")),
    ("vhdx", lambda head: head.startswith(b"vhdxfile")),
    ("vdi", lambda head: head[64:68] == _VDI_SIGNATURE),
    ("qed", lambda head: head.startswith(b"QED\x00")),
    ("luks", lambda head: head.startswith(b"LUKS\xba\xbe")),
)

_PARSERS: dict[str, Callable[[bytes, int], ImageInfo]] = {
    "qcow2": _parse_qcow2, "vmdk": _parse_vmdk, "vhd": _parse_vhd, "vhdx": _parse_vhdx,
    "vdi": _parse_vdi, "qed": _refuse("QED"), "luks": _refuse("LUKS encrypted"),
}
