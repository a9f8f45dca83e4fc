"""File-system type names: their category, whether locks work there, and the advice to give.

Names are those of the Linux mount table's type field (``ext4``, ``nfs4``,
``fuse.sshfs``), macOS's ``f_fstypename`` (``apfs``, ``smbfs``) and Windows' volume
file-system names lowered (``ntfs``, ``refs``). Categories:

``network``  remote or cluster storage: memory maps are slow and fragile there
``local``    a local block device
``memory``   RAM-backed (tmpfs, ramfs)
``pseudo``   a kernel file system (proc, sysfs...): not network, holds no data
``fuse``     a FUSE mount whose subtype is not known yet (statfs alone cannot tell)
``overlay``  a union mount: judged by its upper layer
``unknown``  not in the tables: never assumed local
"""

from __future__ import annotations

from collections.abc import Iterable

__all__ = [
    "FUSE",
    "LOCAL",
    "MEMORY",
    "NETWORK",
    "OVERLAY",
    "PSEUDO",
    "UNKNOWN",
    "advice_for",
    "classify_fs_type",
    "locks_expected",
]

NETWORK = "network"
LOCAL = "local"
MEMORY = "memory"
PSEUDO = "pseudo"
FUSE = "fuse"
OVERLAY = "overlay"
UNKNOWN = "unknown"

_NETWORK = frozenset({
    "nfs", "nfs3", "nfs4", "cifs", "smb", "smb2", "smb3", "smbfs", "ncpfs", "ncp", "afs", "kafs",
    "openafs", "coda", "lustre", "gpfs", "mmfs", "ceph", "cephfs", "glusterfs", "beegfs", "fhgfs",
    "9p", "v9fs", "ocfs2", "gfs", "gfs2", "panfs", "pvfs2", "orangefs", "davfs", "webdav", "vboxsf",
    "vmhgfs", "prl_fs", "virtiofs", "acfs", "snfs", "ibrix", "wekafs", "quobyte", "lizardfs", "moosefs",
    "cvmfs", "afpfs", "sshfs", "juicefs", "drvfs",
})

#: FUSE subtypes (``fuse.<subtype>``) that talk to another machine.
_FUSE_NETWORK = frozenset({
    "sshfs", "rclone", "s3fs", "gcsfuse", "juicefs", "goofys", "geesefs", "mountpoint-s3", "blobfuse",
    "blobfuse2", "glusterfs", "ceph-fuse", "cephfs", "ceph", "lizardfs", "mfs", "moosefs", "cvmfs2",
    "cvmfs", "curlftpfs", "httpfs", "httpfs2", "davfs2", "s3ql", "alluxio-fuse", "fuse_dfs", "hdfs",
    "beegfs", "weed", "seaweedfs", "onedriver", "google-drive-ocamlfuse", "objectivefs", "ossfs",
    "cosfs", "obsfs", "xtreemfs", "quobyte", "irodsfs", "vmhgfs-fuse", "smbnetfs", "sshfs-win",
})

#: FUSE subtypes that serve local data.
_FUSE_LOCAL = frozenset({
    "ntfs-3g", "ntfs", "squashfuse", "squashfuse_ll", "fuse-overlayfs", "bindfs", "mergerfs", "encfs",
    "gocryptfs", "cryfs", "securefs", "lxcfs", "snapfuse", "archivemount", "fuse-zip", "fuse2fs",
    "vmware-vmblock", "portal", "jmtpfs", "dislocker", "exfat", "unionfs", "unionfs-fuse", "ext4fuse",
})

_LOCAL = frozenset({
    "ext2", "ext3", "ext4", "xfs", "btrfs", "zfs", "f2fs", "jfs", "reiserfs", "reiser4", "nilfs2",
    "bcachefs", "vfat", "msdos", "fat", "fat32", "exfat", "ntfs", "ntfs3", "hfs", "hfsplus", "apfs",
    "iso9660", "cd9660", "udf", "squashfs", "erofs", "cramfs", "romfs", "ufs", "minix", "ubifs",
    "jffs2", "zonefs", "ecryptfs", "fuseblk", "refs", "cdfs",
})

_MEMORY = frozenset({"tmpfs", "ramfs", "hugetlbfs", "shm"})

_PSEUDO = frozenset({
    "proc", "sysfs", "devtmpfs", "devfs", "devpts", "cgroup", "cgroup2", "debugfs", "tracefs", "securityfs",
    "pstore", "bpf", "configfs", "mqueue", "fusectl", "autofs", "binfmt_misc", "nsfs", "efivarfs",
    "selinuxfs", "rpc_pipefs", "nfsd",
})

_OVERLAY = frozenset({"overlay", "overlayfs", "aufs"})


def classify_fs_type(fs_type: str) -> str:
    """The category of a mount-table type name (see the module docstring)."""
    name = fs_type.strip().lower()
    if name.startswith(("fuse.", "fuseblk.")):
        subtype = name.split(".", 1)[1]
        if subtype in _FUSE_NETWORK:
            return NETWORK
        if subtype in _FUSE_LOCAL:
            return LOCAL
        return UNKNOWN
    if name == "fuse":
        return FUSE
    for table, category in (
        (_NETWORK, NETWORK), (_MEMORY, MEMORY), (_LOCAL, LOCAL), (_PSEUDO, PSEUDO), (_OVERLAY, OVERLAY)
    ):
        if name in table:
            return category
    return UNKNOWN


def locks_expected(fs_type: str, category: str, options: Iterable[str] = ()) -> bool | None:
    """Whether ``flock``/``fcntl`` locks are expected to work *across every client* of the mount.

    ``True``: they do; ``False``: known not to (or only within this machine);
    ``None``: it depends on server configuration that cannot be seen from here.

    Parameters
    ----------
    fs_type
        The mount-table type name.
    category
        Its category from :func:`classify_fs_type` (after overlay resolution).
    options
        Mount and super-block options (``nolock``, ``local_lock=all``, ``flock``...).
    """
    opts = {o.strip().lower() for o in options}
    name = fs_type.lower()
    if category in (LOCAL, MEMORY, PSEUDO):
        return True
    if category != NETWORK:
        return None
    if name.startswith("nfs"):
        if "nolock" in opts or any(o.startswith("local_lock=") and o != "local_lock=none" for o in opts):
            return False
        return True if name == "nfs4" or "vers=4" in opts or any(o.startswith("vers=4") for o in opts) else None
    if name in {"cifs", "smb3", "smb2", "smb", "smbfs"}:
        return False if "nobrl" in opts else None
    if name == "lustre":
        if "flock" in opts:
            return True
        return False if {"localflock", "noflock"} & opts else None
    if name == "ocfs2":
        return "localflocks" not in opts
    if name in {"gpfs", "ceph", "cephfs", "gfs2"}:
        return True
    if name.startswith("fuse.") or name in {"sshfs", "9p", "v9fs", "vboxsf", "vmhgfs", "virtiofs"}:
        # FUSE and 9p without lock support fall back to locks local to this kernel
        return False if name in {"fuse.sshfs", "sshfs", "fuse.rclone", "fuse.s3fs", "fuse.gcsfuse",
                                 "fuse.goofys", "fuse.mountpoint-s3", "vboxsf"} else None
    return None


def advice_for(kind: str, fs_type: str, is_rotational: bool | None, locks_work: bool | None) -> str:
    """The one-line advice for memory-mapping on a file system of this category."""
    if kind == NETWORK:
        text = (
            f"network file system ({fs_type}): avoid memory maps (each page fault is a network round trip, "
            'a server stall can crash with SIGBUS); copy to local scratch or open with io="buffered"'
        )
        if locks_work is not True:
            text += "; file locks may not be honoured across machines"
        return text
    if kind == PSEUDO:
        return f"kernel pseudo file system ({fs_type}): holds no array data"
    if kind == OVERLAY:
        return (
            f"union mount ({fs_type}) whose layers are not visible here: memory maps are used; "
            'if a layer is on a network mount, open with io="buffered"'
        )
    if kind == MEMORY:
        return f"memory-backed ({fs_type}): memory maps are fine; contents use RAM and vanish at reboot"
    if kind == LOCAL:
        if is_rotational:
            return f"local rotational disk ({fs_type}): memory maps are fine; prefer sequential scans"
        return f"local disk ({fs_type}): memory maps are fine"
    return (
        f"file system not recognised ({fs_type}): memory maps are used; if this is a network mount, "
        'open with io="buffered"'
    )
