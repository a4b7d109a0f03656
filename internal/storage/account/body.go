package account

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"mime"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"time"

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

// readChunk is the buffer size for copying bodies.
const readChunk = 256 << 10

// createTemp creates a new file in tmpDir that nobody else can have opened
// (O_EXCL|O_NOFOLLOW, mode 0600). $TMPDIR is never used.
func createTemp(tmpDir string) (*os.File, error) {
	if tmpDir == "" {
		return nil, errors.New("create message body file: no temporary directory given")
	}
	for range 10 {
		var rnd [12]byte
		if _, err := rand.Read(rnd[:]); err != nil {
			return nil, err
		}
		p := filepath.Join(tmpDir, "body-"+hex.EncodeToString(rnd[:]))
		f, err := os.OpenFile(p, os.O_RDWR|os.O_CREATE|os.O_EXCL|syscall.O_NOFOLLOW, fileMode)
		if errors.Is(err, fs.ErrExist) {
			continue
		} else if err != nil {
			return nil, fmt.Errorf("create message body file: %w", err)
		}
		return f, nil
	}
	return nil, errors.New("create message body file: no free name found")
}

// BodyFromReader copies a body from r (typically a pipe from a peer) into a
// new file in tmpDir. With size >= 0 exactly size bytes must arrive,
// followed by end of file; with size < 0 everything up to end of file is
// taken, at most max bytes. More or less data fails with ErrBadBody, a size
// beyond max with ErrTooLarge. The context's deadline and cancelation
// interrupt blocked reads when r supports SetReadDeadline (as an *os.File
// pipe does).
func BodyFromReader(ctx context.Context, tmpDir string, r io.Reader, size, max int64) (*Body, error) {
	if max <= 0 {
		max = defaultMaxMessage
	}
	if size > max {
		return nil, fmt.Errorf("%w: %d bytes declared, limit %d", ErrTooLarge, size, max)
	}
	if d, ok := r.(interface{ SetReadDeadline(time.Time) error }); ok {
		if dl, ok := ctx.Deadline(); ok {
			d.SetReadDeadline(dl)
		}
		stop := context.AfterFunc(ctx, func() { d.SetReadDeadline(time.Unix(1, 0)) })
		defer stop()
		defer d.SetReadDeadline(time.Time{})
	}
	f, err := createTemp(tmpDir)
	if err != nil {
		return nil, err
	}
	b, err := func() (*Body, error) {
		limit := max
		if size >= 0 {
			limit = size
		}
		buf := make([]byte, readChunk)
		var n int64
		for {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%w: %d bytes received before the deadline: %v", ErrBadBody, n, err)
			}
			want := int64(len(buf))
			if limit-n+1 < want {
				want = limit - n + 1 // one byte more detects excess data
			}
			m, err := r.Read(buf[:want])
			if int64(m) > limit-n {
				if size >= 0 {
					return nil, fmt.Errorf("%w: more than the declared %d bytes", ErrBadBody, size)
				}
				return nil, fmt.Errorf("%w: more than %d bytes", ErrTooLarge, max)
			}
			if m > 0 {
				if _, werr := f.Write(buf[:m]); werr != nil {
					return nil, fmt.Errorf("write message body file: %w", werr)
				}
				n += int64(m)
			}
			if err == io.EOF {
				break
			} else if errors.Is(err, os.ErrDeadlineExceeded) {
				cause := ctx.Err()
				if cause == nil {
					cause = context.DeadlineExceeded
				}
				return nil, fmt.Errorf("%w: %d bytes received before the deadline: %v", ErrBadBody, n, cause)
			} else if err != nil {
				return nil, fmt.Errorf("%w: read: %v", ErrBadBody, err)
			}
		}
		if size >= 0 && n != size {
			return nil, fmt.Errorf("%w: %d bytes received, %d declared", ErrBadBody, n, size)
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

// BodyFromFile copies a regular file received from a peer into a new file
// in tmpDir. FIFOs, sockets, devices and directories are refused without a
// read, files above max with ErrTooLarge. The file is read with pread for
// exactly its size and checked again afterwards: a file that changed size
// or modification time while it was read is refused. It is never mmapped.
func BodyFromFile(ctx context.Context, tmpDir string, f *os.File, max int64) (*Body, error) {
	return bodyFromFile(ctx, tmpDir, f, max, nil)
}

// bodyFromFile is BodyFromFile with a hook called after the copy, for tests.
func bodyFromFile(ctx context.Context, tmpDir string, src *os.File, max int64, afterRead func()) (*Body, error) {
	if max <= 0 {
		max = defaultMaxMessage
	}
	before, err := src.Stat()
	if err != nil {
		return nil, fmt.Errorf("%w: stat: %v", ErrBadBody, err)
	}
	if !before.Mode().IsRegular() {
		return nil, fmt.Errorf("%w: not a regular file (%v)", ErrBadBody, before.Mode().Type())
	}
	size := before.Size()
	if size > max {
		return nil, fmt.Errorf("%w: %d bytes, limit %d", ErrTooLarge, size, max)
	}
	f, err := createTemp(tmpDir)
	if err != nil {
		return nil, err
	}
	b, err := func() (*Body, error) {
		buf := make([]byte, readChunk)
		var off int64
		for off < size {
			if err := ctx.Err(); err != nil {
				return nil, fmt.Errorf("%w: reading stopped: %v", ErrBadBody, err)
			}
			m, err := src.ReadAt(buf[:min(int64(len(buf)), size-off)], off)
			if m > 0 {
				if _, werr := f.Write(buf[:m]); werr != nil {
					return nil, fmt.Errorf("write message body file: %w", werr)
				}
				off += int64(m)
			}
			if err == io.EOF && off < size {
				return nil, fmt.Errorf("%w: file shrank while it was read", ErrBadBody)
			} else if err != nil && err != io.EOF {
				return nil, fmt.Errorf("%w: read: %v", ErrBadBody, err)
			}
		}
		if afterRead != nil {
			afterRead()
		}
		after, err := src.Stat()
		if err != nil {
			return nil, fmt.Errorf("%w: stat: %v", ErrBadBody, err)
		}
		if after.Size() != size || !after.ModTime().Equal(before.ModTime()) {
			return nil, fmt.Errorf("%w: file changed while it was read; send it again once it is complete", ErrBadBody)
		}
		return finishBody(f, size, true)
	}()
	if err != nil {
		f.Close()
		os.Remove(f.Name())
		return nil, err
	}
	return b, nil
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
