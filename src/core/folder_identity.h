// FolderIdentity: which folder a path led to, recorded between passes so that a folder deleted and
// made again, unmounted or replaced is told from the one synced before (a sync dir, a mirror
// folder in the local cloud).
//
// The identity is "<device>:<inode>:<birth time in ns>". The inode alone is not enough: a
// filesystem reuses a freed inode number at once (ext4 gives a folder made again right after a
// `rm -r` the same number, often), so a folder made again would pass for the old one. The birth
// time (statx STATX_BTIME: ext4, xfs, btrfs, tmpfs) tells them apart; where the filesystem keeps
// none (some network filesystems), the identity has only the first two fields and the inode must
// do.
// SameFolder() compares what both identities have, so identities recorded before the birth time
// was (two fields) still match their folder.
// Thread-safe.
#pragma once

#include <string>
#include <string_view>

#include "util/status.h"

namespace filesync::core {

// The identity of the folder open at `fd`. kIo when it cannot be read.
Result<std::string> FolderIdentity(int fd);

// True when two identities name the same folder: device and inode equal, and the birth times equal
// where both have one.
bool SameFolder(std::string_view a, std::string_view b);

}  // namespace filesync::core
