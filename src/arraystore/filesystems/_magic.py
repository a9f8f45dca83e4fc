"""Linux ``statfs`` ``f_type`` magic numbers and what they say about a file system.

The values are the kernel's ``*_SUPER_MAGIC`` constants as published in coreutils'
``src/stat.c`` and ``linux/magic.h``. Each maps to the name arraystore reports and a
category (see :mod:`._fstypes`). ``fuse`` means "ask the mount table": every FUSE
file system, local or remote, shares one magic and only ``/proc/self/mountinfo``
knows its subtype. ``overlay`` means "judge by the upper layer".
"""

from __future__ import annotations

from ._fstypes import FUSE, LOCAL, MEMORY, NETWORK, OVERLAY, PSEUDO, UNKNOWN

__all__ = ["FUSE_SUPER_MAGIC", "MAGICS", "classify_magic"]

FUSE_SUPER_MAGIC = 0x65735546

#: f_type -> (name, category)
MAGICS: dict[int, tuple[str, str]] = {
    # network and cluster file systems
    0x6969: ("nfs", NETWORK),
    0xFF534D42: ("cifs", NETWORK),
    0xFE534D42: ("smb2", NETWORK),
    0x517B: ("smb", NETWORK),
    0x564C: ("ncpfs", NETWORK),
    0x5346414F: ("afs", NETWORK),
    0x6B414653: ("afs", NETWORK),
    0x73757245: ("coda", NETWORK),
    0x0BD00BD0: ("lustre", NETWORK),
    0x47504653: ("gpfs", NETWORK),
    0x00C36400: ("ceph", NETWORK),
    0x19830326: ("beegfs", NETWORK),
    0x01021997: ("9p", NETWORK),
    0x7461636F: ("ocfs2", NETWORK),
    0x01161970: ("gfs2", NETWORK),
    0xAAD7AAEA: ("panfs", NETWORK),
    0x61636673: ("acfs", NETWORK),
    0x013111A8: ("ibrix", NETWORK),
    0xBEEFDEAD: ("snfs", NETWORK),
    0x786F4256: ("vboxsf", NETWORK),
    0xBACBACBC: ("vmhgfs", NETWORK),
    0x7C7C6673: ("prl_fs", NETWORK),
    # memory-backed
    0x01021994: ("tmpfs", MEMORY),
    0x858458F6: ("ramfs", MEMORY),
    0x958458F6: ("hugetlbfs", MEMORY),
    # local block-device file systems
    0xEF53: ("ext4", LOCAL),  # ext2, ext3 and ext4 share it; mountinfo tells which
    0x58465342: ("xfs", LOCAL),
    0x9123683E: ("btrfs", LOCAL),
    0x2FC12FC1: ("zfs", LOCAL),
    0xF2F52010: ("f2fs", LOCAL),
    0x3153464A: ("jfs", LOCAL),
    0x52654973: ("reiserfs", LOCAL),
    0x3434: ("nilfs2", LOCAL),
    0xCA451A4E: ("bcachefs", LOCAL),
    0x4D44: ("vfat", LOCAL),
    0x4006: ("vfat", LOCAL),
    0x2011BAB0: ("exfat", LOCAL),
    0x5346544E: ("ntfs", LOCAL),
    0x4244: ("hfs", LOCAL),
    0x482B: ("hfsplus", LOCAL),
    0x9660: ("iso9660", LOCAL),
    0x15013346: ("udf", LOCAL),
    0x73717368: ("squashfs", LOCAL),
    0xE0F5E1E2: ("erofs", LOCAL),
    0x28CD3D45: ("cramfs", LOCAL),
    0x7275: ("romfs", LOCAL),
    0x00011954: ("ufs", LOCAL),
    0x24051905: ("ubifs", LOCAL),
    0x72B6: ("jffs2", LOCAL),
    0x5A4F4653: ("zonefs", LOCAL),
    0xF15F: ("ecryptfs", LOCAL),
    # kernel pseudo file systems: not network, but no place for arrays either
    0x9FA0: ("proc", PSEUDO),
    0x62656572: ("sysfs", PSEUDO),
    0x1373: ("devtmpfs", PSEUDO),
    0x1CD1: ("devpts", PSEUDO),
    0x0027E0EB: ("cgroup", PSEUDO),
    0x63677270: ("cgroup2", PSEUDO),
    0x64626720: ("debugfs", PSEUDO),
    0x74726163: ("tracefs", PSEUDO),
    0x73636673: ("securityfs", PSEUDO),
    0x6165676C: ("pstore", PSEUDO),
    0xCAFE4A11: ("bpf", PSEUDO),
    0x62656570: ("configfs", PSEUDO),
    0x19800202: ("mqueue", PSEUDO),
    0x65735543: ("fusectl", PSEUDO),
    0x0187: ("autofs", PSEUDO),
    0x42494E4D: ("binfmt_misc", PSEUDO),
    0x6E736673: ("nsfs", PSEUDO),
    0xDE5E81E4: ("efivarfs", PSEUDO),
    0xF97CFF8C: ("selinuxfs", PSEUDO),
    0x67596969: ("rpc_pipefs", PSEUDO),
    0x6E667364: ("nfsd", PSEUDO),
    # resolved elsewhere
    FUSE_SUPER_MAGIC: ("fuse", FUSE),
    0x794C7630: ("overlay", OVERLAY),
    0x61756673: ("aufs", OVERLAY),
}


def classify_magic(f_type: int) -> tuple[str, str]:
    """Name and category for a ``statfs`` ``f_type``; ``("unknown (0x...)", "unknown")`` if unlisted.

    Parameters
    ----------
    f_type
        The raw value; negative values (a signed 32-bit ``long``) are taken modulo 2**32.
    """
    f_type &= 0xFFFFFFFF
    return MAGICS.get(f_type, (f"unknown (0x{f_type:x})", UNKNOWN))
