// Package storage is moxd-store: the only process that opens account
// databases, message files and credentials (DESIGN.md §5, §6).
//
// In this build the role checks its data directory, reports ready and serves
// no requests: mail storage and authentication are not built yet, and peers
// asking for them get "unavailable" from the worker runtime.
package storage

import (
	"context"

	"moxd/internal/datadir"
	"moxd/internal/worker"
)

// Run is the store role.
func Run(ctx context.Context, w *worker.Worker) error {
	return datadir.RunOwner(ctx, w)
}
