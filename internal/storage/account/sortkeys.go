package account

import (
	"bytes"
	"fmt"
	"net/mail"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/mailproto/message"
)

// Sort and thread keys (IMAP SORT and THREAD, RFC 5256) come from what the
// files record kept when the message arrived: the base subject and the
// message ids of References, In-Reply-To and Message-ID (parseBody), and
// the envelope inside the MIME tree for the Date and the addresses. No
// message file is read. Every files record has carried the References ids
// since the first schema, so older messages need nothing extra.

// SortFields says which keys SortKeys fills; the values match the IPC
// sort key groups.
type SortFields uint8

// Key groups.
const (
	SortDate    SortFields = 1 << iota // Sent
	SortSubject                        // Subject
	SortFrom                           // From
	SortTo                             // To
	SortCc                             // Cc
	SortThread                         // MessageID, InReplyTo, References; and Reply
)

// SortKey is one message's keys.
type SortKey struct {
	UID uint32
	// Sent is the Date header's time, or the received time when the
	// header is missing or does not parse (RFC 5256 §2.2).
	Sent time.Time
	// Subject is the base subject (RFC 5256 §2.1) of the RFC 2047-decoded
	// Subject, not case-folded.
	Subject string
	// Reply says the subject was a reply or forward: extracting the base
	// subject removed more than list tags and white space (RFC 5256 §3
	// REFERENCES step 5). Set with SortThread.
	Reply bool
	// From, To and Cc are the first mailbox of each header, group
	// markers skipped, with the display name RFC 2047-decoded.
	From, To, Cc message.Address
	MessageID    string   // the first id of Message-ID, brackets included
	InReplyTo    string   // the first id of In-Reply-To
	References   []string // the ids of References, in order
}

// needsEnvelope tells whether the keys come from the envelope, which
// means decoding the message's MIME tree.
func (f SortFields) needsEnvelope() bool {
	return f&(SortDate|SortFrom|SortTo|SortCc|SortThread) != 0
}

// SortKeys calls fn with the keys in fields of the messages in uids with
// UID >= from, in UID order, until fn returns false. Expunged messages are
// skipped. It runs in one read transaction: fn should not block.
func (a *Account) SortKeys(mb, uidvalidity uint32, uids []UIDRange, from uint32, fields SortFields, fn func(*SortKey) bool) error {
	return a.db.View(func(tx *bolt.Tx) error {
		if _, err := checkMailbox(tx, mb, uidvalidity); err != nil {
			return err
		}
		msgs := tx.Bucket([]byte(bucketMsgs)).Cursor()
		files := tx.Bucket([]byte(bucketFiles))
		prefix := key32(mb)
		for _, r := range normRanges(uids) {
			if r.Last < from {
				continue
			}
			for k, v := msgs.Seek(msgKey(mb, max(r.First, from))); k != nil && bytes.HasPrefix(k, prefix); k, v = msgs.Next() {
				uid := beU32(k[4:])
				if uid > r.Last {
					break
				}
				m, err := parseMsgRec(v)
				if err != nil {
					return fmt.Errorf("message %d: %w", uid, err)
				}
				f, err := parseFileRec(files.Get(key64(m.FileID)))
				if err != nil {
					return fmt.Errorf("message uid %d file %x: %w", uid, m.FileID, err)
				}
				sk, err := sortKey(uid, &m, &f, fields)
				if err != nil {
					return err
				}
				if !fn(&sk) {
					return nil
				}
			}
		}
		return nil
	})
}

// sortKey builds the keys of one message.
func sortKey(uid uint32, m *msgRec, f *fileRec, fields SortFields) (SortKey, error) {
	k := SortKey{UID: uid, Sent: time.Unix(m.Received, 0), Subject: f.BaseSubject}
	if fields&SortThread != 0 {
		k.MessageID = f.MessageID
		if len(f.InReplyTo) > 0 {
			k.InReplyTo = f.InReplyTo[0]
		}
		k.References = f.References
	}
	if !fields.needsEnvelope() {
		return k, nil
	}
	part, err := message.UnmarshalPart(f.Tree)
	if err != nil {
		return k, fmt.Errorf("message uid %d structure: %w", uid, err)
	}
	env := part.Envelope
	if env == nil {
		return k, nil
	}
	// RFC 5256 §2.2: the sent date is the Date header's, in UTC; the
	// internal date stands in for a missing or unparsable one.
	if fields&SortDate != 0 {
		if t, err := mail.ParseDate(env.Date); err == nil {
			k.Sent = t
		}
	}
	if fields&SortThread != 0 {
		k.Reply = subjectIsReply(decodeWords(env.Subject), f.BaseSubject)
	}
	if fields&SortFrom != 0 {
		k.From = firstMailbox(env.From)
	}
	if fields&SortTo != 0 {
		k.To = firstMailbox(env.To)
	}
	if fields&SortCc != 0 {
		k.Cc = firstMailbox(env.Cc)
	}
	return k, nil
}

// firstMailbox returns the first address of l that is a mailbox, not a
// group marker (RFC 5256 §3 addr-mailbox; RFC 5957 §3), with its display
// name decoded.
func firstMailbox(l []message.Address) message.Address {
	for _, a := range l {
		if a.Host != "" {
			a.Name = decodeWords(a.Name)
			return a
		}
	}
	return message.Address{}
}

// subjectIsReply tells whether extracting base from the decoded subject
// removed a reply or forward marker (a subj-refwd, "(fwd)" or "[fwd:
// ...]") rather than only white space and leading subj-blobs (RFC 5256
// §3 REFERENCES step 5, §5).
func subjectIsReply(subject, base string) bool {
	s := strings.Join(strings.Fields(subject), " ")
	for {
		t, ok := skipSubjBlob(s)
		if !ok || t == "" {
			break
		}
		s = t
	}
	return s != base
}

// skipSubjBlob removes one leading subj-blob ("[...]" and the white space
// after it) from s (RFC 5256 §5).
func skipSubjBlob(s string) (string, bool) {
	if !strings.HasPrefix(s, "[") {
		return s, false
	}
	i := strings.IndexAny(s[1:], "[]")
	if i < 0 || s[1+i] != ']' {
		return s, false
	}
	return strings.TrimLeft(s[i+2:], " \t"), true
}
