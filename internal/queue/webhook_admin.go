package queue

// Webhook events for queue administration (moxctl queue webhooks ...):
// the events waiting to be posted, and those posted or given up. The
// Authorization header value of an event is a credential of the account's
// receiver: it never leaves queue in a reply, and a copy of it in the
// text of a last error (a server that echoes the request) is masked.

import (
	"strings"

	"moxd/internal/ipc"
)

// hookAuthMask replaces an Authorization value in the text of a reply.
const hookAuthMask = "[authorization]"

// maskAuth replaces the authorization value auth, and its credential
// without the scheme ("Bearer xyz": xyz), in s.
func maskAuth(s, auth string) string {
	auth = strings.TrimSpace(auth)
	if auth == "" {
		return s
	}
	s = strings.ReplaceAll(s, auth, hookAuthMask)
	if _, cred, ok := strings.Cut(auth, " "); ok {
		if cred = strings.TrimSpace(cred); len(cred) >= 4 {
			s = strings.ReplaceAll(s, cred, hookAuthMask)
		}
	}
	return s
}

// webhookIPC is the reply entry of h: everything but its Authorization
// value, with the long texts clipped.
func webhookIPC(h *Hook) ipc.QueueWebhook {
	return ipc.QueueWebhook{
		ID:          h.ID,
		Account:     ipc.ClipText(h.Account, ipc.MaxAccountLen),
		URL:         ipc.ClipText(maskAuth(h.URL, h.Auth), ipc.MaxTextLen),
		Event:       ipc.ClipText(h.Event, ipc.MaxNameLen),
		Queued:      unixNano(h.Queued),
		Attempts:    count32(h.Attempts),
		NextAttempt: unixNano(h.NextAttempt),
		LastError:   ipc.ClipText(maskAuth(h.LastError, h.Auth), ipc.MaxQueueError),
		Posted:      h.Posted,
		Payload:     ipc.ClipText(maskAuth(string(h.Payload), h.Auth), ipc.MaxQueueHookPayload),
	}
}

// webhooks runs a QueueWebhooks: the events of the account from Start on,
// as many as fit the frame.
func (sv *service) webhooks(m *ipc.QueueWebhooks) (ipc.Message, error) {
	l, err := sv.q.Hooks(m.Account, m.Retired, 0)
	if err != nil {
		return nil, remoteError("read the webhook events", err)
	}
	max := int(m.Max)
	if max == 0 {
		max = ipc.MaxQueueWebhooks
	}
	rep := &ipc.QueueWebhookList{Total: count32(len(l))}
	start := min(int(m.Start), len(l))
	used := 0
	for _, h := range l[start:] {
		e := webhookIPC(h)
		if used += e.WireSize(); used > ipc.QueueReplyBudget || len(rep.Entries) == max {
			break
		}
		rep.Entries = append(rep.Entries, e)
	}
	rep.More = start+len(rep.Entries) < len(l)
	return rep, nil
}
