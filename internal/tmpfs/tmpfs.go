// Package tmpfs gives tests a small filesystem of their own that they can
// fill up: a tmpfs of a given size mounted on a fresh temporary folder, so a
// test sees the kernel's real ENOSPC where plumbline writes.
//
// Mounting needs root (CAP_SYS_ADMIN). Without it the test is skipped, or
// fails when PLUMBLINE_CI=1 (CI runs as root). Test support only; it
// imports nothing from plumbline.
package tmpfs

import (
	"fmt"
	"os"
	"syscall"
	"testing"
)

// Mount mounts a tmpfs of size bytes (mode 0700) on a new temporary folder
// and returns the folder; the test's cleanup unmounts it.
func Mount(t testing.TB, size int64) string {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "mounting a tmpfs to fill up needs root")
	}
	dir := t.TempDir()
	if err := syscall.Mount("tmpfs", dir, "tmpfs", syscall.MS_NOSUID|syscall.MS_NODEV, fmt.Sprintf("size=%d,mode=0700", size)); err != nil {
		skip(t, fmt.Sprintf("mount a tmpfs on %s: %v", dir, err))
	}
	t.Cleanup(func() {
		if err := syscall.Unmount(dir, syscall.MNT_DETACH); err != nil {
			t.Errorf("unmount the tmpfs at %s: %v", dir, err)
		}
	})
	return dir
}

func skip(t testing.TB, why string) {
	t.Helper()
	if os.Getenv("PLUMBLINE_CI") == "1" {
		t.Fatal("PLUMBLINE_CI=1 and a test would be skipped: " + why)
	}
	t.Skip(why)
}
