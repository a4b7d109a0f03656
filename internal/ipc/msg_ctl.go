package ipc

// FamCtl: a worker's requests and events to master.

// Hello is a worker's first request: who it is and what it was built from.
// Master answers CodeBuildMismatch if BuildID differs from its own.
type Hello struct {
	Role    Role // the role the worker was started as; must be a worker role
	BuildID string
	PID     uint32
}

func (*Hello) Type() MsgType { return TypeHello }
func (*Hello) FDs() int      { return 0 }
func (m *Hello) Encode(e *Encoder) {
	if m.Role == RoleMaster {
		e.Fail("hello from role master")
	}
	e.Role(m.Role)
	e.StringMax(m.BuildID, MaxBuildIDLen)
	e.Uint32(m.PID)
}
func (m *Hello) Decode(d *Decoder) {
	m.Role = d.Role()
	if m.Role == RoleMaster {
		d.Fail("hello from role master")
	}
	m.BuildID = d.StringMax(MaxBuildIDLen)
	m.PID = d.Uint32()
}

// HelloReply tells the worker the configuration generation and its size, to
// be fetched with GetConfig.
type HelloReply struct {
	Generation uint64
	ConfigSize uint32
}

func (*HelloReply) Type() MsgType { return TypeHelloReply }
func (*HelloReply) FDs() int      { return 0 }
func (m *HelloReply) Encode(e *Encoder) {
	e.Uint64(m.Generation)
	e.Uint32(m.ConfigSize)
}
func (m *HelloReply) Decode(d *Decoder) {
	m.Generation = d.Uint64()
	m.ConfigSize = d.Uint32()
}

// GetConfig asks for the worker's configuration from byte Offset on.
type GetConfig struct {
	Offset uint32
}

func (*GetConfig) Type() MsgType       { return TypeGetConfig }
func (*GetConfig) FDs() int            { return 0 }
func (m *GetConfig) Encode(e *Encoder) { e.Uint32(m.Offset) }
func (m *GetConfig) Decode(d *Decoder) { m.Offset = d.Uint32() }

// ConfigChunk is up to MaxConfigChunk bytes of the configuration; Total is
// its full size.
type ConfigChunk struct {
	Total uint32
	Data  []byte
}

func (*ConfigChunk) Type() MsgType { return TypeConfigChunk }
func (*ConfigChunk) FDs() int      { return 0 }
func (m *ConfigChunk) Encode(e *Encoder) {
	e.Uint32(m.Total)
	e.BytesMax(m.Data, MaxConfigChunk)
}
func (m *ConfigChunk) Decode(d *Decoder) {
	m.Total = d.Uint32()
	m.Data = d.BytesMax(MaxConfigChunk)
}

// GetListeners asks for the worker's listening sockets from index Start on.
type GetListeners struct {
	Start uint16
}

func (*GetListeners) Type() MsgType       { return TypeGetListeners }
func (*GetListeners) FDs() int            { return 0 }
func (m *GetListeners) Encode(e *Encoder) { e.Uint16(m.Start) }
func (m *GetListeners) Decode(d *Decoder) { m.Start = d.Uint16() }

// ListenerInfo describes one listening socket.
type ListenerInfo struct {
	Kind string // what is served on it, e.g. "smtp", "submissions", "imaps"
	Addr string // the address it is bound to
}

// ListenerBatch carries up to MaxFDs listeners, one fd each, in order; Total
// is the number the worker has in all.
type ListenerBatch struct {
	Total     uint16
	Listeners []ListenerInfo
}

func (*ListenerBatch) Type() MsgType { return TypeListenerBatch }
func (m *ListenerBatch) FDs() int    { return len(m.Listeners) }
func (m *ListenerBatch) Encode(e *Encoder) {
	e.Uint16(m.Total)
	e.CountMax(len(m.Listeners), MaxFDs)
	for _, l := range m.Listeners {
		e.StringMax(l.Kind, MaxNameLen)
		e.StringMax(l.Addr, MaxNameLen)
	}
}
func (m *ListenerBatch) Decode(d *Decoder) {
	m.Total = d.Uint16()
	n := d.Count(MaxFDs)
	if n == 0 {
		m.Listeners = nil
		return
	}
	m.Listeners = make([]ListenerInfo, n)
	for i := range m.Listeners {
		m.Listeners[i].Kind = d.StringMax(MaxNameLen)
		m.Listeners[i].Addr = d.StringMax(MaxNameLen)
	}
}

// Ready tells master the worker serves.
type Ready struct{}

func (*Ready) Type() MsgType     { return TypeReady }
func (*Ready) FDs() int          { return 0 }
func (*Ready) Encode(e *Encoder) {}
func (*Ready) Decode(d *Decoder) {}

// Violation reports that Peer broke the protocol on its channel to the
// sender; master restarts Peer.
type Violation struct {
	Peer   Role
	Reason string
}

func (*Violation) Type() MsgType { return TypeViolation }
func (*Violation) FDs() int      { return 0 }
func (m *Violation) Encode(e *Encoder) {
	e.Role(m.Peer)
	e.StringMax(m.Reason, MaxTextLen)
}
func (m *Violation) Decode(d *Decoder) {
	m.Peer = d.Role()
	m.Reason = d.StringMax(MaxTextLen)
}

// Progress reports how far a long store administration job (an import)
// has come, so master can show it to the waiting moxctl. An event.
type Progress struct {
	Job      uint64
	Messages uint64
	Bytes    uint64
}

func (*Progress) Type() MsgType { return TypeProgress }
func (*Progress) FDs() int      { return 0 }
func (m *Progress) Encode(e *Encoder) {
	e.Uint64(m.Job)
	e.Uint64(m.Messages)
	e.Uint64(m.Bytes)
}
func (m *Progress) Decode(d *Decoder) {
	m.Job = d.Uint64()
	m.Messages = d.Uint64()
	m.Bytes = d.Uint64()
}
