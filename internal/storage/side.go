package storage

import (
	"encoding/binary"
	"encoding/json"
	"fmt"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/auth"
)

// Side records (docs/storage.md): login failures are buffered and written
// to store.db every few seconds; losing the last seconds of them in a crash
// is accepted. Records older than sideRetention are pruned.

const (
	sideRetention   = 30 * 24 * time.Hour
	maxSideBuffered = 10000
)

var bucketLoginFailures = []byte("loginfailures")

type sideRecords struct {
	log *slog.Logger
	db  *bolt.DB

	mu      sync.Mutex
	pending []auth.FailureRecord
	dropped int

	flushMu sync.Mutex // one flush at a time; guards seq and pruned
	seq     uint64
	pruned  time.Time
}

func openSideRecords(dir string, log *slog.Logger) (*sideRecords, error) {
	path := filepath.Join(dir, "store.db")
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: 5 * time.Second, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return nil, fmt.Errorf("open %s (another moxd-store running?): %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		_, err := tx.CreateBucketIfNotExists(bucketLoginFailures)
		return err
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("initialize %s: %w", path, err)
	}
	return &sideRecords{log: log, db: db}, nil
}

// recordFailures buffers login failures; it never blocks on the disk.
func (s *sideRecords) recordFailures(l []auth.FailureRecord) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, r := range l {
		if len(s.pending) >= maxSideBuffered {
			s.dropped++
			continue
		}
		s.pending = append(s.pending, r)
	}
}

// flush writes buffered records in one transaction and prunes old ones.
func (s *sideRecords) flush() {
	s.flushMu.Lock()
	defer s.flushMu.Unlock()
	s.mu.Lock()
	l := s.pending
	s.pending = nil
	dropped := s.dropped
	s.dropped = 0
	s.mu.Unlock()
	if dropped > 0 {
		s.log.Warn("login failure records dropped: too many at once", "dropped", dropped)
	}
	now := time.Now()
	prune := now.Sub(s.pruned) > time.Hour
	if len(l) == 0 && !prune {
		return
	}
	if prune {
		s.pruned = now
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketLoginFailures)
		for _, r := range l {
			v, err := json.Marshal(r)
			if err != nil {
				return err
			}
			s.seq++
			k := make([]byte, 16)
			binary.BigEndian.PutUint64(k, uint64(now.UnixNano()))
			binary.BigEndian.PutUint64(k[8:], s.seq)
			if err := b.Put(k, v); err != nil {
				return err
			}
		}
		if !prune {
			return nil
		}
		// Keys start with the time they were written; collect first, as
		// deleting under a cursor would skip entries.
		c := b.Cursor()
		limit := uint64(now.Add(-sideRetention).UnixNano())
		var old [][]byte
		for k, _ := c.First(); k != nil && binary.BigEndian.Uint64(k) < limit && len(old) < 100000; k, _ = c.Next() {
			old = append(old, append([]byte(nil), k...))
		}
		for _, k := range old {
			if err := b.Delete(k); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		s.log.Error("write login failure records", "err", err)
	}
}

func (s *sideRecords) close() {
	s.flush()
	s.db.Close()
}
