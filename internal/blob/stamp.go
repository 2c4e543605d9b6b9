package blob

import (
	"io/fs"
	"time"
)

// Stamp identifies one state of a file: its inode, size, modification time
// and inode change time. Any write to the file through any path changes it
// (the change time cannot be set back by a user), so bytes verified under a
// stamp are still right while the stamp is the same, short of a failing disk
// (which only a full re-hash finds).
type Stamp struct {
	Ino   uint64
	Size  int64
	Mtime time.Time
	Ctime time.Time
}

// StampOf returns fi's stamp.
func StampOf(fi fs.FileInfo) Stamp {
	ino, ctime := sysStamp(fi)
	return Stamp{Ino: ino, Size: fi.Size(), Mtime: fi.ModTime(), Ctime: ctime}
}
