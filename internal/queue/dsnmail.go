package queue

// DSNs made by queue (RFC 3464): "failed" when a recipient is done
// without delivery, "delayed" after the [queue] delayed_dsn_after-th
// failed attempt, "relayed" for NOTIFY=SUCCESS when the receiving server
// does not pass DSN requests on. A DSN is a queued message of its own,
// from the null sender, with the postmaster account as sender account,
// threaded to the original with In-Reply-To and References. DSNs are
// never answered with DSNs.

import (
	"crypto/rand"
	"encoding/base32"
	"fmt"
	"io"
	"maps"
	"os"
	"slices"
	"strings"
	"time"

	"moxd/internal/ipc"
	"moxd/internal/mailproto/dsn"
)

// maxDSNOriginal bounds the copy of the original message in a DSN;
// beyond it only the header is included.
const maxDSNOriginal = 1 << 20

// dsnRecipient is a recipient a DSN reports on.
type dsnRecipient struct {
	rc         *Recipient
	out        outcome
	retryUntil time.Time
}

// composeDSN writes the DSN for rcpts of m and returns it as a message to
// add. action is "failed", "delayed" or "relayed".
func (sv *service) composeDSN(m *Message, action string, rcpts []dsnRecipient, now time.Time) (*newMessage, error) {
	st := sv.settings.Load()
	f, err := os.Open(sv.q.filePath(m.FileID))
	if err != nil {
		return nil, err
	}
	defer f.Close()
	msgID := newMessageID(sv.hostname)
	dm := &dsn.Message{
		ReportingMTA:      sv.hostname,
		From:              "postmaster@" + sv.hostname,
		To:                m.MailFrom,
		OriginalSubject:   m.Subject,
		MessageID:         msgID,
		OriginalMessageID: strings.Trim(m.MessageID, "<> "),
		EnvID:             m.EnvID,
		ArrivalDate:       m.Received,
		Date:              now,
		Original:          io.NewSectionReader(newPrefixedFile(m.Prepend, f, m.Size), 0, int64(len(m.Prepend))+m.Size),
		HeadersOnly:       m.Ret == ipc.RetHdrs,
		SMTPUTF8:          m.SMTPUTF8,
		MaxOriginal:       maxDSNOriginal,
	}
	for _, r := range rcpts {
		status := r.out.Status
		if status == "" {
			if action == "failed" {
				status = "5.0.0"
			} else {
				status = "4.0.0"
			}
		}
		if action == "relayed" {
			status = "2.0.0"
		}
		dr := dsn.Recipient{
			FinalRecipient:    r.rc.Address,
			OriginalRecipient: r.rc.ORcpt,
			Action:            dsn.Action(action),
			Status:            status,
			RemoteMTA:         r.out.Host,
			LastAttempt:       now,
			WillRetryUntil:    r.retryUntil,
		}
		if r.out.Host == "store" || r.out.Host == "localserve" {
			dr.RemoteMTA = ""
		}
		if r.out.Error != "" {
			dr.Diagnostic = r.out.Error
		}
		dm.Recipients = append(dm.Recipients, dr)
	}
	switch action {
	case "delayed":
		dm.Explanation = "Delivery is tried again until the time given above; you will get another notice if it fails for good. Nothing needs to be done now."
	case "relayed":
		dm.Explanation = fmt.Sprintf("%s passed the message on to a server that does not send delivery notifications; this is the last notice you will get.", sv.hostname)
	}
	tmp, err := createTemp(sv.q.tmpDir, "dsn")
	if err != nil {
		return nil, err
	}
	werr := dm.Compose(tmp)
	if werr == nil {
		werr = tmp.Sync()
	}
	fi, serr := tmp.Stat()
	if cerr := tmp.Close(); werr == nil {
		werr = cerr
	}
	if werr == nil {
		werr = serr
	}
	if werr != nil {
		os.Remove(tmp.Name())
		return nil, werr
	}
	return &newMessage{
		msg: Message{
			Account:   st.postmaster,
			DSN:       true,
			SMTPUTF8:  m.SMTPUTF8,
			MessageID: "<" + msgID + ">",
			Subject:   "delivery status: " + action,
		},
		rcpts: []Recipient{{Address: m.MailFrom}},
		tmp:   tmp.Name(),
		size:  fi.Size(),
		first: now,
	}, nil
}

// newMessageID returns a unique Message-ID (without <>) at host.
func newMessageID(host string) string {
	return randomID(15) + "@" + host
}

// randomID returns n random bytes in lower-case base32.
func randomID(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return strings.ToLower(base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(b))
}

// envelopeFrom is the MAIL FROM of m as sent: with its unique id after
// the domain's first local part separator when it has one.
func (sv *service) envelopeFrom(m *Message) string {
	if m.FromID == "" || m.MailFrom == "" {
		return m.MailFrom
	}
	at := strings.LastIndexByte(m.MailFrom, '@')
	lp, dom := m.MailFrom[:at], m.MailFrom[at+1:]
	seps := sv.settings.Load().separators[strings.ToLower(dom)]
	if len(seps) == 0 {
		return m.MailFrom
	}
	if strings.HasSuffix(lp, "\"") {
		return lp[:len(lp)-1] + seps[0] + m.FromID + "\"@" + dom
	}
	return lp + seps[0] + m.FromID + "@" + dom
}

func removeTemp(path string) {
	if path != "" {
		os.Remove(path)
	}
}

func sortedKeys(m map[string]string) []string {
	return slices.Sorted(maps.Keys(m))
}
