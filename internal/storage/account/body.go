package account

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"moxd/internal/durable"
	"os"
	"strings"
	"syscall"

	"moxd/internal/bodycopy"
	"moxd/internal/mailproto/message"
)

// Body is a message received into a temporary file of its own, fsynced
// (unless made for an import chunk) and parsed. It is not tied to an
// account: the same Body can be delivered to several accounts, each of
// which links the file. Remove deletes the temporary file once every
// delivery using it is done.
type Body struct {
	path string
	size int64
	part *message.Part
	tree []byte // part, marshaled

	messageID   string
	inReplyTo   []string
	references  []string
	baseSubject string
}

// Size returns the size of the message in bytes.
func (b *Body) Size() int64 { return b.size }

// Part returns the parsed MIME structure (offsets into the file).
func (b *Body) Part() *message.Part { return b.part }

// Open opens the body's file read-only, to hand it to a peer that must
// not change it (a local retry through queue).
func (b *Body) Open() (*os.File, error) {
	f, err := os.OpenFile(b.path, os.O_RDONLY|syscall.O_NOFOLLOW, 0)
	if err != nil {
		return nil, fmt.Errorf("open message body file: %w", err)
	}
	return f, nil
}

// Remove deletes the temporary file.
func (b *Body) Remove() error {
	if err := os.Remove(b.path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove message body file: %w", err)
	}
	return nil
}

// BodyFromReader copies a body from r, a pipe from a peer, into a new file
// in tmpDir (bodycopy.FromPipe). With size >= 0 exactly size bytes must
// arrive, followed by end of file; with size < 0 everything up to end of
// file is taken, at most max bytes. More or less data than declared, or a
// copy that the context's deadline or cancelation interrupts, fails with
// ErrBadBody; a declared size or data beyond max with ErrTooLarge.
func BodyFromReader(ctx context.Context, tmpDir string, r *os.File, size, max int64) (*Body, error) {
	if max <= 0 {
		max = defaultMaxMessage
	}
	return receiveBody(tmpDir, func(w io.Writer) (int64, error) {
		return bodycopy.FromPipe(ctx, r, w, size, max)
	})
}

// BodyFromFile copies a regular file received from a peer into a new file
// in tmpDir (bodycopy.FromFile). FIFOs, sockets, devices and directories
// are refused without a read, files above max with ErrTooLarge. The file
// is read with pread for exactly its size and checked again afterwards: a
// file that changed size or modification time while it was read is
// refused. It is never mmapped.
func BodyFromFile(ctx context.Context, tmpDir string, f *os.File, max int64) (*Body, error) {
	return bodyFromFile(ctx, tmpDir, f, max, nil)
}

// bodyFromFile is BodyFromFile with a hook for tests, called once the
// first chunk of src is copied (for a small file: after the read, before
// the second fstat).
func bodyFromFile(ctx context.Context, tmpDir string, src *os.File, max int64, afterRead func()) (*Body, error) {
	if max <= 0 {
		max = defaultMaxMessage
	}
	return receiveBody(tmpDir, func(w io.Writer) (int64, error) {
		if afterRead != nil {
			w = &hookWriter{w: w, hook: afterRead}
		}
		return bodycopy.FromFile(ctx, src, w, max)
	})
}

// receiveBody runs fill into a new file in tmpDir, then syncs and parses
// the file. On failure the file is removed.
func receiveBody(tmpDir string, fill func(w io.Writer) (int64, error)) (*Body, error) {
	f, err := createTemp(tmpDir)
	if err != nil {
		return nil, err
	}
	b, err := func() (*Body, error) {
		n, err := fill(f)
		if err != nil {
			return nil, copyError(err)
		}
		return finishBody(f, n, true)
	}()
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return b, nil
}

// copyError gives an error of bodycopy the store's kind: ErrTooLarge for a
// body above the limit, ErrBadBody for any other refused body, and a
// failure of the store's own file otherwise.
func copyError(err error) error {
	switch {
	case errors.Is(err, bodycopy.ErrTooLarge):
		return fmt.Errorf("%w: %w", ErrTooLarge, err)
	case bodycopy.Refused(err):
		return fmt.Errorf("%w: %w", ErrBadBody, err)
	}
	return fmt.Errorf("write message body file: %w", err)
}

// hookWriter calls hook once, after the first write to w.
type hookWriter struct {
	w    io.Writer
	hook func()
}

func (hw *hookWriter) Write(p []byte) (int, error) {
	n, err := hw.w.Write(p)
	if hw.hook != nil {
		hw.hook()
		hw.hook = nil
	}
	return n, err
}

// BodyFromBytes writes data into a new file in tmpDir. Imports pass
// sync=false and make a whole chunk durable at once.
func BodyFromBytes(tmpDir string, data []byte, sync bool) (*Body, error) {
	f, err := createTemp(tmpDir)
	if err != nil {
		return nil, err
	}
	if _, err := f.Write(data); err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, fmt.Errorf("write message body file: %w", err)
	}
	if sync {
		if err := f.Sync(); err != nil {
			f.Close()
			os.Remove(f.Name())
			return nil, fmt.Errorf("sync message body file: %w", err)
		}
	}
	path := f.Name()
	if err := f.Close(); err != nil {
		os.Remove(path)
		return nil, fmt.Errorf("write message body file: %w", err)
	}
	b, err := parseBody(bytes.NewReader(data), int64(len(data)))
	if err != nil {
		os.Remove(path)
		return nil, err
	}
	b.path = path
	return b, nil
}

// finishBody syncs, parses and closes a received body file.
func finishBody(f *os.File, size int64, sync bool) (*Body, error) {
	if sync {
		if err := f.Sync(); err != nil {
			return nil, fmt.Errorf("sync message body file: %w", err)
		}
	}
	b, err := parseBody(f, size)
	if err != nil {
		return nil, err
	}
	b.path = f.Name()
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("close message body file: %w", err)
	}
	return b, nil
}

// maxThreadHeader bounds the header bytes read for threading keys.
const maxThreadHeader = 256 << 10

// parseBody parses a message and extracts what the files record keeps.
func parseBody(r io.ReaderAt, size int64) (*Body, error) {
	part, err := message.Parse(r, size, message.DefaultLimits())
	if err != nil {
		return nil, fmt.Errorf("parse message: %w", err)
	}
	tree, err := part.MarshalBinary()
	if err != nil {
		return nil, fmt.Errorf("marshal message structure: %w", err)
	}
	b := &Body{size: size, part: part, tree: tree}
	if env := part.Envelope; env != nil {
		if ids := message.MessageIDs(env.MessageID); len(ids) > 0 {
			b.messageID = ids[0]
		}
		b.inReplyTo = message.MessageIDs(env.InReplyTo)
		b.baseSubject = message.BaseSubject(decodeWords(env.Subject))
	}
	hlen := min(part.BodyStart-part.HeaderStart, maxThreadHeader)
	if hlen > 0 {
		raw := make([]byte, hlen)
		if _, err := r.ReadAt(raw, part.HeaderStart); err != nil && err != io.EOF {
			return nil, fmt.Errorf("read message header: %w", err)
		}
		for _, f := range parseFields(raw) {
			if strings.EqualFold(f.name, "References") {
				b.references = message.MessageIDs(f.value)
				break
			}
		}
	}
	return b, nil
}

// decodeWords decodes RFC 2047 encoded words; undecodable text stays raw.
func decodeWords(s string) string {
	d := mime.WordDecoder{}
	if out, err := d.DecodeHeader(s); err == nil {
		return out
	}
	return s
}

// hfield is one unfolded header field.
type hfield struct{ name, value string }

// parseFields splits a header block into unfolded fields (RFC 5322 §2.2.3).
// Lines that are neither a field nor a continuation are skipped.
func parseFields(raw []byte) []hfield {
	var l []hfield
	for len(raw) > 0 {
		line := raw
		if i := bytes.IndexByte(raw, '\n'); i >= 0 {
			line, raw = raw[:i], raw[i+1:]
		} else {
			raw = nil
		}
		line = bytes.TrimSuffix(line, []byte{'\r'})
		if len(line) == 0 {
			continue
		}
		if line[0] == ' ' || line[0] == '\t' {
			if n := len(l); n > 0 {
				l[n-1].value += string(line)
			}
			continue
		}
		name, value, ok := bytes.Cut(line, []byte{':'})
		if !ok || len(name) == 0 {
			continue
		}
		l = append(l, hfield{strings.TrimRight(string(name), " \t"), string(value)})
	}
	for i := range l {
		l[i].value = strings.TrimSpace(l[i].value)
	}
	return l
}

// createTemp creates a new body file in tmpDir (durable.CreateTemp).
func createTemp(tmpDir string) (*os.File, error) {
	f, err := durable.CreateTemp(tmpDir, "body")
	if err != nil {
		return nil, fmt.Errorf("create message body file: %w", err)
	}
	return f, nil
}
