package storage

import (
	"fmt"
	"sync"
	"time"

	"moxd/internal/ipc"
)

// Disk reserve (store.disk_reserve): while the file system of the store's
// data directory has less free space than the reserve, store refuses new
// bodies and deliveries with ipc.CodeDiskFull, before it writes anything,
// so senders try again later (SMTP 452 4.3.1) instead of the disk filling
// up under the account databases. The free space is asked of the kernel
// at most once a second.

// diskCheckInterval is how long one statfs answer is used.
const diskCheckInterval = time.Second

// diskSpace caches the free space of one directory's file system.
type diskSpace struct {
	dir  string
	free func(dir string) (uint64, error) // statfs; tests substitute it
	now  func() time.Time

	mu      sync.Mutex
	checked time.Time
	bytes   uint64
	err     error
}

func newDiskSpace(dir string, now func() time.Time) *diskSpace {
	return &diskSpace{dir: dir, free: freeSpace, now: now}
}

// available returns the free space for unprivileged writers, at most
// diskCheckInterval old.
func (d *diskSpace) available() (uint64, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	now := d.now()
	if d.checked.IsZero() || now.Sub(d.checked) >= diskCheckInterval || now.Before(d.checked) {
		d.bytes, d.err = d.free(d.dir)
		d.checked = now
	}
	return d.bytes, d.err
}

// check returns a CodeDiskFull error when less than reserve bytes are
// free. A failing statfs does not refuse mail: the reserve is a safety
// margin, not a reason to stop when it cannot be measured.
func (d *diskSpace) check(reserve int64) error {
	if reserve <= 0 {
		return nil
	}
	free, err := d.available()
	if err != nil || free >= uint64(reserve) {
		return nil
	}
	return ipc.Errorf(ipc.CodeDiskFull, "%d bytes free on the store's file system, below the reserve of %d bytes (store.disk_reserve); try again later", free, reserve)
}

// freeSpaceError wraps a statfs failure.
func freeSpaceError(dir string, err error) error {
	return fmt.Errorf("free space of %s: %w", dir, err)
}
