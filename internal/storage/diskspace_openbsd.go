package storage

import "golang.org/x/sys/unix"

// freeSpace returns the bytes available to unprivileged users on the file
// system of dir.
func freeSpace(dir string) (uint64, error) {
	var st unix.Statfs_t
	if err := unix.Statfs(dir, &st); err != nil {
		return 0, freeSpaceError(dir, err)
	}
	// Negative when root used its reserve.
	return uint64(max(st.F_bavail, 0)) * uint64(st.F_bsize), nil
}
