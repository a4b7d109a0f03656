package datadir

import (
	"context"
	"fmt"

	"moxd/internal/config"
	"moxd/internal/worker"
)

// RunOwner is the body of a role that owns a data directory but serves no
// requests yet: it checks the directory, reports ready and waits. Peers
// asking it for anything get "unavailable" from the worker runtime.
func RunOwner(ctx context.Context, w *worker.Worker) error {
	var slice config.Slice
	if err := w.Config(&slice); err != nil {
		return err
	}
	if err := Check(slice.Dir); err != nil {
		return fmt.Errorf("%s: %w", w.Role, err)
	}
	w.Ready()
	<-ctx.Done()
	return nil
}
