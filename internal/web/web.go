// Package web is the role logic of moxd-web (ports 80 and 443). It owns
// nothing: account data comes from moxd-store and queue, TLS signatures from
// moxd-keys over IPC.
//
// The web interfaces (admin, account, webmail, webapi) are not part of this
// build: every request is answered 503 with a text saying so, over TLS on the
// https listener, so an admin checking the port sees what runs there.
package web

import (
	"context"
	"crypto/tls"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"time"

	"moxd/internal/keys/keyclient"
	"moxd/internal/worker"
)

// Unavailable is the body of every response.
const Unavailable = "moxd: the web interface is not available in this build yet\n"

// Run serves the web role.
func Run(ctx context.Context, w *worker.Worker) error {
	kc := keyclient.New(w)
	w.OnReload(func(ctx context.Context) error {
		kc.Invalidate()
		return nil
	})
	handler := http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		rw.Header().Set("Content-Type", "text/plain; charset=utf-8")
		rw.Header().Set("Retry-After", "3600")
		rw.WriteHeader(http.StatusServiceUnavailable)
		rw.Write([]byte(Unavailable))
	})
	var servers []*http.Server
	var wg sync.WaitGroup
	for _, l := range w.Listeners() {
		srv := &http.Server{
			Handler:           handler,
			ReadHeaderTimeout: 30 * time.Second,
			IdleTimeout:       2 * time.Minute,
			ErrorLog:          slog.NewLogLogger(w.Log.Handler(), slog.LevelDebug),
		}
		var ln net.Listener = l.Listener
		if l.Kind == "https" {
			tc := kc.TLSConfig()
			tc.NextProtos = []string{"http/1.1"}
			ln = tls.NewListener(l.Listener, tc)
		}
		servers = append(servers, srv)
		wg.Add(1)
		go func() {
			defer wg.Done()
			if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
				w.Log.Error("http serve", "listener", l.Addr, "err", err)
			}
		}()
	}
	w.Ready()
	<-ctx.Done()
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for _, s := range servers {
		s.Shutdown(sctx)
	}
	wg.Wait()
	return nil
}
