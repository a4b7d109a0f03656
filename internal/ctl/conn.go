package ctl

// Lines with file descriptors. Both ends send each line, with its fds, in one
// sendmsg. On a stream socket the kernel delivers the fds with a read that
// ends inside (or at the end of) the bytes of the sendmsg that carried them,
// and a read never continues past such a message. So the fds received with
// a read belong to the line that holds the read's last byte; Conn records
// that position for each fd and hands the fds out with their line.

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"time"

	"golang.org/x/sys/unix"
)

// Conn is one end of a control connection.
type Conn struct {
	uc      *net.UnixConn
	buf     []byte // received, not yet returned
	pending []heldFD
	rbuf    []byte
	oob     []byte
}

type heldFD struct {
	pos int // index in buf of the last byte of the read that brought it
	f   *os.File
}

// NewConn wraps a connected unix stream socket.
func NewConn(uc *net.UnixConn) *Conn {
	return &Conn{
		uc:   uc,
		rbuf: make([]byte, 16*1024),
		// Room for more fds than allowed, so an excess is seen and closed
		// rather than truncated.
		oob: make([]byte, unix.CmsgSpace(4*(MaxFDs+4))),
	}
}

// Close closes the connection and any fds received but not handed out.
func (c *Conn) Close() error {
	for _, h := range c.pending {
		h.f.Close()
	}
	c.pending = nil
	return c.uc.Close()
}

// SetDeadline sets the read and write deadline.
func (c *Conn) SetDeadline(t time.Time) error {
	return c.uc.SetDeadline(t)
}

// Unix returns the underlying socket, e.g. for peer credentials.
func (c *Conn) Unix() *net.UnixConn {
	return c.uc
}

// ReadLine returns the next line (without its newline) of at most max bytes
// and the fds that came with it. The caller owns the fds. io.EOF means the
// peer closed the connection between lines.
func (c *Conn) ReadLine(max int) ([]byte, []*os.File, error) {
	for {
		if i := bytes.IndexByte(c.buf, '\n'); i >= 0 && i <= max {
			line := bytes.Clone(c.buf[:i])
			var files []*os.File
			var keep []heldFD
			for _, h := range c.pending {
				if h.pos <= i {
					files = append(files, h.f)
				} else {
					keep = append(keep, heldFD{h.pos - (i + 1), h.f})
				}
			}
			c.pending = keep
			c.buf = append(c.buf[:0], c.buf[i+1:]...)
			return line, files, nil
		}
		if len(c.buf) > max {
			return nil, nil, fmt.Errorf("line longer than %d bytes", max)
		}
		n, oobn, flags, _, err := c.uc.ReadMsgUnix(c.rbuf, c.oob)
		files, ferr := parseRights(c.oob[:oobn])
		for _, f := range files {
			c.pending = append(c.pending, heldFD{len(c.buf) + n - 1, f})
		}
		c.buf = append(c.buf, c.rbuf[:n]...)
		if ferr == nil && flags&unix.MSG_CTRUNC != 0 {
			ferr = errors.New("file descriptors were cut off (too many sent)")
		}
		if ferr != nil {
			return nil, nil, ferr
		}
		if err != nil {
			if errors.Is(err, io.EOF) && len(c.buf) > 0 {
				err = io.ErrUnexpectedEOF
			}
			return nil, nil, err
		}
		if n == 0 {
			if len(c.buf) > 0 {
				return nil, nil, io.ErrUnexpectedEOF
			}
			return nil, nil, io.EOF
		}
	}
}

// parseRights turns SCM_RIGHTS control messages into files; other control
// messages are an error (the files are returned anyway, to be closed).
func parseRights(oob []byte) ([]*os.File, error) {
	if len(oob) == 0 {
		return nil, nil
	}
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return nil, fmt.Errorf("malformed control data: %v", err)
	}
	var files []*os.File
	var rerr error
	for i := range msgs {
		if msgs[i].Header.Level != unix.SOL_SOCKET || msgs[i].Header.Type != unix.SCM_RIGHTS {
			rerr = fmt.Errorf("unexpected control message type %d", msgs[i].Header.Type)
			continue
		}
		fds, err := unix.ParseUnixRights(&msgs[i])
		if err != nil {
			rerr = fmt.Errorf("malformed SCM_RIGHTS: %v", err)
			continue
		}
		for _, fd := range fds {
			unix.CloseOnExec(fd)
			files = append(files, os.NewFile(uintptr(fd), "ctl-received"))
		}
	}
	return files, rerr
}

// WriteLine sends line (a newline is added) with files in one sendmsg.
func (c *Conn) WriteLine(line []byte, files ...*os.File) error {
	if len(files) > MaxFDs {
		return fmt.Errorf("%d file descriptors, at most %d per line", len(files), MaxFDs)
	}
	var oob []byte
	if len(files) > 0 {
		fds := make([]int, len(files))
		for i, f := range files {
			fds[i] = int(f.Fd())
		}
		oob = unix.UnixRights(fds...)
	}
	b := append(bytes.Clone(line), '\n')
	n, _, err := c.uc.WriteMsgUnix(b, oob, nil)
	if err != nil {
		return err
	}
	// A short first write sent the fds; the rest is plain data.
	if n < len(b) {
		if _, err := c.uc.Write(b[n:]); err != nil {
			return err
		}
	}
	return nil
}

// ReadRequest reads one request and its fds (master's side). A request
// whose fd count differs from what it says is refused, its fds closed.
func (c *Conn) ReadRequest() (Request, []*os.File, error) {
	line, files, err := c.ReadLine(MaxRequest)
	if err != nil {
		return Request{}, nil, err
	}
	var req Request
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		closeFiles(files)
		return Request{}, nil, fmt.Errorf("bad request: %v", err)
	}
	if req.FDs != len(files) {
		closeFiles(files)
		return req, nil, fmt.Errorf("bad request: it says %d file descriptors, %d came with it", req.FDs, len(files))
	}
	return req, files, nil
}

// WriteResponse sends one response line with files (master's side).
func (c *Conn) WriteResponse(resp Response, files ...*os.File) error {
	resp.FDs = len(files)
	b, err := json.Marshal(resp)
	if err != nil {
		return err
	}
	return c.WriteLine(b, files...)
}

func closeFiles(files []*os.File) {
	for _, f := range files {
		f.Close()
	}
}

// Client is moxctl's end of a control connection.
type Client struct {
	*Conn
	path string
	// OnProgress, if set, receives interim progress lines.
	OnProgress func(Progress)
}

// Dial connects to the control socket at path.
func Dial(path string) (*Client, error) {
	c, err := net.DialTimeout("unix", path, 5*time.Second)
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %v", ErrNotRunning, path, err)
	}
	return &Client{Conn: NewConn(c.(*net.UnixConn)), path: path}, nil
}

// Call sends req with files and reads its answer: data into v (if not nil),
// and the fds that came with the answer, which the caller owns.
func (c *Client) Call(req Request, files []*os.File, v any) ([]*os.File, error) {
	req.FDs = len(files)
	b, err := json.Marshal(req)
	if err != nil {
		return nil, err
	}
	if err := c.WriteLine(b, files...); err != nil {
		return nil, fmt.Errorf("send to %s: %w", c.path, err)
	}
	return c.Next(v)
}

// Next reads one more answer (after the first of an "export").
func (c *Client) Next(v any) ([]*os.File, error) {
	for {
		line, files, err := c.ReadLine(MaxRequest)
		if err != nil {
			return nil, fmt.Errorf("read answer from %s: %w", c.path, err)
		}
		var resp Response
		if err := json.Unmarshal(line, &resp); err != nil {
			closeFiles(files)
			return nil, fmt.Errorf("read answer from %s: %w", c.path, err)
		}
		if resp.Progress != nil {
			closeFiles(files)
			if c.OnProgress != nil {
				c.OnProgress(*resp.Progress)
			}
			continue
		}
		if resp.FDs != len(files) {
			closeFiles(files)
			return nil, fmt.Errorf("answer from %s says %d file descriptors, %d came", c.path, resp.FDs, len(files))
		}
		if !resp.OK {
			closeFiles(files)
			return nil, errors.New(resp.Error)
		}
		if v != nil && len(resp.Data) > 0 {
			if err := json.Unmarshal(resp.Data, v); err != nil {
				closeFiles(files)
				return nil, fmt.Errorf("decode answer: %w", err)
			}
		}
		return files, nil
	}
}
