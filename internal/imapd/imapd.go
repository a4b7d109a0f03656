// Package imapd is the role logic of moxd-imap (ports 143 and 993). It owns
// nothing: mailbox data comes from moxd-store and TLS signatures from
// moxd-keys over IPC.
//
// The IMAP server itself is not part of this build. So that no client is left
// hanging on a silent port, every connection gets an IMAP BYE greeting with
// the UNAVAILABLE response code (RFC 3501 §7.1.5, RFC 5530 §3) saying so, over
// TLS on the implicit-TLS listener.
package imapd

import (
	"context"
	"crypto/tls"
	"net"
	"time"

	"moxd/internal/keys/keyclient"
	"moxd/internal/worker"
)

// Greeting is sent to every client before the connection is closed.
const Greeting = "* BYE [UNAVAILABLE] moxd: IMAP is not available in this build yet\r\n"

// Run serves the imap role.
func Run(ctx context.Context, w *worker.Worker) error {
	kc := keyclient.New(w)
	w.OnReload(func(ctx context.Context) error {
		kc.Invalidate()
		return nil
	})
	tlsConfig := kc.TLSConfig()
	wait := w.Accept(ctx, func(ctx context.Context, l worker.Listener, conn net.Conn) {
		refuse(conn, l.Kind == "imaps", tlsConfig, w)
	})
	w.Ready()
	wait()
	return nil
}

func refuse(conn net.Conn, implicitTLS bool, tc *tls.Config, w *worker.Worker) {
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(30 * time.Second))
	if implicitTLS {
		tconn := tls.Server(conn, tc)
		if err := tconn.Handshake(); err != nil {
			w.Log.Debug("tls handshake", "remote", conn.RemoteAddr().String(), "err", err)
			return
		}
		conn = tconn
	}
	conn.Write([]byte(Greeting))
}
