package imapd

// FETCH of message data (RFC 9051 §6.4.5, §7.5.2): the items of one
// message, the body sections and their partials.
//
// Implementation notes:
//   - Message data is Prefix (header lines store adds at delivery)
//     followed by the file; its size is store's metadata size. A file
//     shorter than that ends the connection (a literal's length is sent
//     before its data).

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strconv"
	"time"

	"moxd/internal/mailproto/imap"
)

// msgReader serves a message: prefix, then the file.
type msgReader struct {
	prefix []byte
	f      *os.File
}

func (r *msgReader) ReadAt(p []byte, off int64) (int, error) {
	n := 0
	if off < int64(len(r.prefix)) {
		n = copy(p, r.prefix[off:])
		if n == len(p) {
			return n, nil
		}
	}
	m, err := r.f.ReadAt(p[n:], off+int64(n)-int64(len(r.prefix)))
	return n + m, err
}

// headerLen returns the length of the header section read from r, with
// the blank line that ends it (all of r if there is none).
func headerLen(r io.Reader) (int64, error) {
	br := bufio.NewReaderSize(r, 16*1024)
	var n int64
	lineStart := true
	for {
		line, err := br.ReadSlice('\n')
		n += int64(len(line))
		switch {
		case err == bufio.ErrBufferFull:
			lineStart = false
			continue
		case err == io.EOF:
			return n, nil
		case err != nil:
			return n, err
		}
		if lineStart && (len(line) == 2 && line[0] == '\r' || len(line) == 1) {
			return n, nil
		}
		lineStart = true
	}
}

// fetchBody says whether the item needs the message data, and checks that
// it is built.
func fetchBody(it imap.FetchItem) (bool, error) {
	switch it.Name {
	case "FLAGS", "UID", "INTERNALDATE", "RFC822.SIZE", "MODSEQ":
		return false, nil
	case "RFC822", "RFC822.HEADER", "RFC822.TEXT":
		return true, nil
	case "BODY":
		if s := it.Section; s != nil && len(s.Part) == 0 && (s.Specifier == "" || s.Specifier == "HEADER" || s.Specifier == "TEXT") {
			return true, nil
		}
	}
	return false, respNO(imap.CodeCannot, "FETCH %s is not built yet", it.ResponseName())
}

// setsSeen says whether fetching the item sets \Seen (RFC 9051 §6.4.5).
func setsSeen(it imap.FetchItem) bool {
	return it.Name == "RFC822" || it.Name == "RFC822.TEXT" || it.Name == "BODY" && !it.Peek
}

func (c *conn) fetchMessage(ctx context.Context, i int, items []imap.FetchItem, needBody, addFlags bool) error {
	s := c.sel
	m := s.at(i)
	var ra io.ReaderAt
	if needBody {
		msg, err := c.sess.Open(ctx, s.ref, m.uid, true)
		if err != nil {
			return storeError(err)
		}
		if msg.File == nil {
			return respNO(imap.CodeServerBug, "store sent no message file")
		}
		defer msg.File.Close()
		ra = &msgReader{prefix: msg.Prefix, f: msg.File}
	}
	var hdrLen int64 = -1
	header := func() (int64, error) {
		if hdrLen < 0 {
			n, err := headerLen(io.NewSectionReader(ra, 0, m.size))
			if err != nil {
				return 0, &ioError{fmt.Errorf("reading message %d: %w", m.uid, err)}
			}
			hdrLen = n
		}
		return hdrLen, nil
	}
	c.w.WriteString("* " + strconv.Itoa(i+1) + " FETCH (")
	first := true
	sp := func() {
		if !first {
			c.w.WriteByte(' ')
		}
		first = false
	}
	hasFlags, hasModSeq, hasUID := false, false, false
	for _, it := range items {
		sp()
		switch it.Name {
		case "FLAGS":
			hasFlags = true
			c.w.Write(appendFlags([]byte("FLAGS "), m.flags, m.keywords))
			continue
		case "UID":
			hasUID = true
			c.w.WriteString("UID " + strconv.FormatUint(uint64(m.uid), 10))
			continue
		case "INTERNALDATE":
			c.w.WriteString(`INTERNALDATE "` + imap.FormatDateTime(time.Unix(m.received, 0).UTC()) + `"`)
			continue
		case "RFC822.SIZE":
			c.w.WriteString("RFC822.SIZE " + strconv.FormatInt(m.size, 10))
			continue
		case "MODSEQ":
			hasModSeq = true
			c.w.Write(appendModSeq(nil, m.modseq))
			continue
		}
		// The message data: [start, end) of the whole message.
		spec := ""
		if it.Section != nil {
			spec = it.Section.Specifier
		}
		switch it.Name {
		case "RFC822.HEADER":
			spec = "HEADER"
		case "RFC822.TEXT":
			spec = "TEXT"
		}
		start, end := int64(0), m.size
		if spec != "" {
			h, err := header()
			if err != nil {
				return err
			}
			if spec == "HEADER" {
				end = h
			} else {
				start = h
			}
		}
		if p := it.Partial; p != nil {
			start = min(start+int64(p.Offset), end)
			end = min(start+int64(p.Count), end)
		}
		c.w.WriteString(it.ResponseName() + " {" + strconv.FormatInt(end-start, 10) + "}\r\n")
		if n, err := io.Copy(c.w, io.NewSectionReader(ra, start, end-start)); err != nil || n != end-start {
			if err == nil {
				err = errors.New("short read")
			}
			// The literal's length is out: the connection cannot go on.
			return &ioError{fmt.Errorf("message %d: %d of %d bytes: %w", m.uid, n, end-start, err)}
		}
	}
	if addFlags && !hasFlags {
		sp()
		c.w.Write(appendFlags([]byte("FLAGS "), m.flags, m.keywords))
	}
	if addFlags && c.condstore && !hasModSeq {
		// RFC 7162 §3.2: a flag change reports UID and MODSEQ.
		sp()
		c.w.Write(appendModSeq(nil, m.modseq))
	}
	if addFlags && c.condstore && !hasUID {
		sp()
		c.w.WriteString("UID " + strconv.FormatUint(uint64(m.uid), 10))
	}
	c.w.WriteString(")\r\n")
	return nil
}
