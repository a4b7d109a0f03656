package account

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"moxd/internal/durable"
	"os"
	"path/filepath"
	"strconv"

	bolt "go.etcd.io/bbolt"
)

// Backup writes a consistent copy of the account into dstDir
// (docs/storage.md "Backup"): index.db as a bbolt Tx.WriteTo copy from one
// read transaction, and every message file that snapshot names, hard-linked
// (or copied across file systems) to msg/<fan>/<id>. While it runs, files of
// expunged messages are not deleted, so every file the snapshot names still
// exists. dstDir is created (0700) if missing; it must not already hold a
// database.
func (a *Account) Backup(ctx context.Context, dstDir string) error {
	a.backupMu.Lock()
	a.backups++
	a.backupMu.Unlock()
	defer func() {
		a.backupMu.Lock()
		a.backups--
		a.backupMu.Unlock()
		a.signal() // the commit goroutine removes files held back
	}()

	if err := os.MkdirAll(filepath.Join(dstDir, "msg"), dirMode); err != nil {
		return fmt.Errorf("backup: create directory: %w", err)
	}
	dbPath := filepath.Join(dstDir, indexName)
	f, err := os.OpenFile(dbPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return fmt.Errorf("backup: create database copy (the destination must be a new directory): %w", err)
	}
	var ids []uint64
	err = a.db.View(func(tx *bolt.Tx) error {
		if _, err := tx.WriteTo(f); err != nil {
			return fmt.Errorf("write database copy: %w", err)
		}
		return tx.Bucket([]byte(bucketFiles)).ForEach(func(k, v []byte) error {
			ids = append(ids, be64(k))
			return nil
		})
	})
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	dirs := map[string]bool{}
	for i, id := range ids {
		if i%256 == 0 {
			if err := ctx.Err(); err != nil {
				return ctxErr(ctx, "backup")
			}
		}
		dir := filepath.Join(dstDir, "msg", fanName(id))
		if !dirs[dir] {
			if err := os.Mkdir(dir, dirMode); err != nil && !errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("backup: %w", err)
			}
			dirs[dir] = true
		}
		dst := filepath.Join(dir, strconv.FormatUint(id, 16))
		if err := durable.LinkOrCopy(a.filePath(id), dst, fileMode); err != nil {
			return fmt.Errorf("backup message file: %w", err)
		}
	}
	for dir := range dirs {
		if err := durable.SyncDir(dir); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	for _, dir := range []string{filepath.Join(dstDir, "msg"), dstDir} {
		if err := durable.SyncDir(dir); err != nil {
			return fmt.Errorf("backup: %w", err)
		}
	}
	return nil
}
