package ipc

// ErrorReply answers a request of any family with an error; Call returns it
// as a *RemoteError.
type ErrorReply struct {
	Code    uint16
	Message string
}

func (*ErrorReply) Type() MsgType { return TypeErrorReply }
func (*ErrorReply) FDs() int      { return 0 }
func (m *ErrorReply) Encode(e *Encoder) {
	e.Uint16(m.Code)
	e.StringMax(m.Message, MaxErrorMessage)
}
func (m *ErrorReply) Decode(d *Decoder) {
	m.Code = d.Uint16()
	m.Message = d.StringMax(MaxErrorMessage)
}

// Ack is the generic empty reply: "done". It may answer a request of any
// family whose table entry names it as the reply.
type Ack struct{}

func (*Ack) Type() MsgType     { return TypeAck }
func (*Ack) FDs() int          { return 0 }
func (*Ack) Encode(e *Encoder) {}
func (*Ack) Decode(d *Decoder) {}

// encodeNames writes a list of names, each at most MaxNameLen bytes.
func encodeNames(e *Encoder, names []string) {
	e.CountMax(len(names), MaxNames)
	for _, n := range names {
		e.StringMax(n, MaxNameLen)
	}
}

func decodeNames(d *Decoder) []string {
	n := d.Count(MaxNames)
	if n == 0 {
		return nil
	}
	l := make([]string, n)
	for i := range l {
		l[i] = d.StringMax(MaxNameLen)
	}
	return l
}
