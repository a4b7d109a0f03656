package ipc

// FamSupervise: master's requests and events to a worker.

// PeerUp hands the worker its end of a new channel to Peer, as its one fd.
type PeerUp struct {
	Peer       Role
	Generation uint64 // increases with every channel master creates for this edge
}

func (*PeerUp) Type() MsgType { return TypePeerUp }
func (*PeerUp) FDs() int      { return 1 }
func (m *PeerUp) Encode(e *Encoder) {
	e.Role(m.Peer)
	e.Uint64(m.Generation)
}
func (m *PeerUp) Decode(d *Decoder) {
	m.Peer = d.Role()
	m.Generation = d.Uint64()
}

// SetLogLevel sets the worker's log level, an slog.Level value.
type SetLogLevel struct {
	Level int32
}

func (*SetLogLevel) Type() MsgType       { return TypeSetLogLevel }
func (*SetLogLevel) FDs() int            { return 0 }
func (m *SetLogLevel) Encode(e *Encoder) { e.Int32(m.Level) }
func (m *SetLogLevel) Decode(d *Decoder) { m.Level = d.Int32() }

// GetStatus asks for the worker's counters from index Start on.
type GetStatus struct {
	Start uint16
}

func (*GetStatus) Type() MsgType       { return TypeGetStatus }
func (*GetStatus) FDs() int            { return 0 }
func (m *GetStatus) Encode(e *Encoder) { e.Uint16(m.Start) }
func (m *GetStatus) Decode(d *Decoder) { m.Start = d.Uint16() }

// Counter is one named status value.
type Counter struct {
	Name  string
	Value uint64
}

// StatusReply carries as many counters as fit one frame; Total is the number
// of counters in all.
type StatusReply struct {
	Total    uint16
	Counters []Counter
}

func (*StatusReply) Type() MsgType { return TypeStatusReply }
func (*StatusReply) FDs() int      { return 0 }
func (m *StatusReply) Encode(e *Encoder) {
	e.Uint16(m.Total)
	e.CountMax(len(m.Counters), MaxCounters)
	for _, c := range m.Counters {
		e.StringMax(c.Name, MaxNameLen)
		e.Uint64(c.Value)
	}
}
func (m *StatusReply) Decode(d *Decoder) {
	m.Total = d.Uint16()
	n := d.Count(MaxCounters)
	if n == 0 {
		m.Counters = nil
		return
	}
	m.Counters = make([]Counter, n)
	for i := range m.Counters {
		m.Counters[i].Name = d.StringMax(MaxNameLen)
		m.Counters[i].Value = d.Uint64()
	}
}

// Shutdown asks the worker to stop, letting sessions finish for at most
// GraceMillis; the worker answers ShutdownDone when it has stopped serving.
type Shutdown struct {
	GraceMillis uint32
}

func (*Shutdown) Type() MsgType       { return TypeShutdown }
func (*Shutdown) FDs() int            { return 0 }
func (m *Shutdown) Encode(e *Encoder) { e.Uint32(m.GraceMillis) }
func (m *Shutdown) Decode(d *Decoder) { m.GraceMillis = d.Uint32() }

// ShutdownDone answers Shutdown.
type ShutdownDone struct{}

func (*ShutdownDone) Type() MsgType     { return TypeShutdownDone }
func (*ShutdownDone) FDs() int          { return 0 }
func (*ShutdownDone) Encode(e *Encoder) {}
func (*ShutdownDone) Decode(d *Decoder) {}

// Reload tells the worker a new configuration is ready; it pulls it with
// GetConfig.
type Reload struct{}

func (*Reload) Type() MsgType     { return TypeReload }
func (*Reload) FDs() int          { return 0 }
func (*Reload) Encode(e *Encoder) {}
func (*Reload) Decode(d *Decoder) {}
