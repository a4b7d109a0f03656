// Package queue is moxd-queue: it owns the outgoing queue and report
// databases and makes the outbound connections (DESIGN.md §2, §4).
//
// In this build the role checks its data directory, reports ready and serves
// no requests: the queue is not built yet, and peers asking for it get
// "unavailable" from the worker runtime.
package queue

import (
	"context"

	"moxd/internal/datadir"
	"moxd/internal/worker"
)

// Run is the queue role.
func Run(ctx context.Context, w *worker.Worker) error {
	return datadir.RunOwner(ctx, w)
}
