// Package storage is moxd-store: the only process that opens account
// databases, message files and credentials (DESIGN.md §5, §6).
//
// In this build the role checks its data directory, reports ready and serves
// no requests: mail storage and authentication are not built yet, and peers
// asking for them get "unavailable" from the worker runtime.
package storage

import (
	"context"
	"fmt"

	"moxd/internal/config"
	"moxd/internal/datadir"
	"moxd/internal/worker"
)

// Run is the store role.
func Run(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if err := datadir.Check(slice.Dir); err != nil {
		return fmt.Errorf("store: %w", err)
	}
	w.Ready()
	<-ctx.Done()
	return nil
}
