package imapd

// COMPRESS=DEFLATE (RFC 4978): after the tagged OK both directions are
// raw deflate streams (RFC 1951), the server's flushed at the end of every
// response burst so the client never waits for buffered output.
//
// Implementation notes:
//   - The reader and writer are replaced as for STARTTLS; octets already
//     buffered after the COMPRESS command would be uncompressed data the
//     client sent too early, which ends the connection.
//   - The client's stream is read with internal/mailproto/inflate, which
//     returns data at every flush point, also zlib's Z_PARTIAL_FLUSH
//     (mbsync) whose last bits are not byte-aligned; compress/flate's
//     reader waits for more input there.
//   - The compressor uses BestSpeed: the deflate state is a few hundred KiB
//     per connection, allocated only for connections that ask for it.

import (
	"bufio"
	"compress/flate"

	"moxd/internal/mailproto/imap"
	"moxd/internal/mailproto/inflate"
)

func init() {
	addVerbs(map[string]verb{
		"COMPRESS": {authState, (*conn).cmdCompress},
	})
	addCaps(capEntry{name: "COMPRESS=DEFLATE"})
}

// deflateWriter is the compressing side of a COMPRESS connection.
type deflateWriter struct {
	zw *flate.Writer
}

func (c *conn) cmdCompress(cmd *imap.Command) error {
	a := cmd.Args.(*imap.CompressArgs)
	switch {
	case a.Mechanism != "DEFLATE":
		return respBAD("compression mechanism %s is not supported, only DEFLATE", a.Mechanism)
	case c.deflate != nil:
		// RFC 4978 §3: a second COMPRESS fails with [COMPRESSIONACTIVE].
		return respNO("COMPRESSIONACTIVE", "compression is already active")
	}
	if c.r.Buffered() > 0 {
		return &respError{status: imap.BAD, text: "data after COMPRESS before the OK", bye: true}
	}
	c.writeStatus(cmd.Tag, imap.OK, "", "DEFLATE active")
	if err := c.flush(); err != nil {
		return err
	}
	zw, err := flate.NewWriter(c.nc, flate.BestSpeed)
	if err != nil {
		return err // only for an invalid level
	}
	c.deflate = &deflateWriter{zw: zw}
	c.setStreams(inflate.NewReader(bufio.NewReader(c.nc)), zw)
	return errNoTagged
}

// flushDeflate ends the compressed burst after c.w was flushed into it.
func (c *conn) flushDeflate() error {
	if c.deflate == nil {
		return nil
	}
	return c.deflate.zw.Flush()
}
