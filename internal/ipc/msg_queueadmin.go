package ipc

// FamQueueAdmin: administration of the queue. Master relays moxctl's
// requests (the backup); web's admin pages get the same family later.
// Requests that need an fd can only come from master: web -> queue
// carries no fds. Queue serves master's channel with a handler of its own,
// so a request from web never reaches what master asks for.

// QueueBackup asks queue to write its part of a backup into the directory
// Path, created by master (owned by queue, mode 0700, empty). The one fd is
// that directory opened by master: queue checks that Path still is the
// same directory, and writes through the fd, not through the path (the
// backup's top directory is root's). Answered with QueueBackupResult.
type QueueBackup struct {
	Path string
}

func (*QueueBackup) Type() MsgType       { return TypeQueueBackup }
func (*QueueBackup) FDs() int            { return 1 }
func (m *QueueBackup) Encode(e *Encoder) { e.StringMax(m.Path, MaxTextLen) }
func (m *QueueBackup) Decode(d *Decoder) { m.Path = d.StringMax(MaxTextLen) }

// QueueBackupResult answers QueueBackup: the queued messages and recipient
// records the snapshot holds, and the message files written.
type QueueBackupResult struct {
	Messages   uint64
	Recipients uint64
	Files      uint64
}

func (*QueueBackupResult) Type() MsgType { return TypeQueueBackupResult }
func (*QueueBackupResult) FDs() int      { return 0 }
func (m *QueueBackupResult) Encode(e *Encoder) {
	e.Uint64(m.Messages)
	e.Uint64(m.Recipients)
	e.Uint64(m.Files)
}
func (m *QueueBackupResult) Decode(d *Decoder) {
	m.Messages = d.Uint64()
	m.Recipients = d.Uint64()
	m.Files = d.Uint64()
}
