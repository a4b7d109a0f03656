package queue

// Webhooks: for accounts with an outgoing [[account.webhook]], every
// outcome of their messages (delivered, delayed, failed, suppressed,
// relayed, canceled) becomes an HTTP POST with a JSON body. The events are
// records in queue.db written in the same operation as the outcome they
// report, so none is lost in a crash (one may be posted twice). A runner
// posts due events, retrying with backoff; posted and given-up events are
// kept for [queue] keep, like retired messages.
//
// Targets: the URL's host is resolved with moxd's resolver and every
// address is checked before connecting: loopback, link-local, private and
// unspecified addresses are refused unless [queue] webhook_allow_private
// is set, so an account cannot make queue reach services on this host or
// its network. Redirects are not followed. Responses are read up to a
// small limit and only their status code counts.

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"

	"moxd/internal/config"
	"moxd/internal/dns"
)

const (
	bucketHooks       = "hooks"       // hook id (8) → Hook, waiting to be posted
	bucketHookRetired = "hookretired" // retired time (8) · hook id (8) → Hook
	metaNexthook      = "nexthook"

	hookMaxAttempts = 8
	hookFirstRetry  = time.Minute
	hookTimeout     = 30 * time.Second
	hookBatch       = 50
	hookParallel    = 8
	// hookMaxResponse bounds the response body read (and kept).
	hookMaxResponse = 1024
)

// Hook is one event for a webhook.
type Hook struct {
	ID          uint64
	Account     string
	URL         string
	Auth        string
	Event       string
	Payload     []byte // JSON
	Queued      time.Time
	Attempts    int
	NextAttempt time.Time
	LastError   string // or, when retired after a post, the response status
	Posted      bool   // retired: posted with a 2xx answer
}

func (h *Hook) marshal() []byte {
	w := newRecord()
	w.string(h.Account)
	w.string(h.URL)
	w.string(h.Auth)
	w.string(h.Event)
	w.string(string(h.Payload))
	w.time(h.Queued)
	w.uint(uint64(h.Attempts))
	w.time(h.NextAttempt)
	w.string(h.LastError)
	w.bool(h.Posted)
	return w.b
}

func unmarshalHook(id uint64, b []byte) (*Hook, error) {
	d := newReader(b)
	h := &Hook{ID: id}
	h.Account = d.string()
	h.URL = d.string()
	h.Auth = d.string()
	h.Event = d.string()
	h.Payload = []byte(d.string())
	h.Queued = d.time()
	h.Attempts = int(d.uint())
	h.NextAttempt = d.time()
	h.LastError = d.string()
	h.Posted = d.bool()
	if err := d.done(); err != nil {
		return nil, fmt.Errorf("webhook event %d: %w", id, err)
	}
	return h, nil
}

// hookPayload is the JSON body of an outgoing event.
type hookPayload struct {
	Version          int               `json:"version"`
	Event            string            `json:"event"`
	DSN              bool              `json:"dsn"`         // the message is a DSN made by moxd
	Suppressing      bool              `json:"suppressing"` // the address is now on the suppression list
	QueueMsgID       uint64            `json:"queueMsgID"`
	FromID           string            `json:"fromID,omitempty"`
	MessageID        string            `json:"messageID,omitempty"`
	Subject          string            `json:"subject,omitempty"`
	From             string            `json:"from"`
	Recipient        string            `json:"recipient"`
	Attempts         int               `json:"attempts"`
	SMTPCode         int               `json:"smtpCode,omitempty"`
	SMTPEnhancedCode string            `json:"smtpEnhancedCode,omitempty"`
	Error            string            `json:"error,omitempty"`
	Host             string            `json:"host,omitempty"`
	Queued           time.Time         `json:"queued"`
	EventTime        time.Time         `json:"eventTime"`
	Extra            map[string]string `json:"extra"`
}

// outgoingHook returns the outgoing webhook of account that wants event.
func (st *settings) outgoingHook(account, event string) *config.QueueWebhook {
	a, ok := st.accounts[account]
	if !ok {
		return nil
	}
	for i := range a.Webhooks {
		h := &a.Webhooks[i]
		if h.Kind == "outgoing" && (len(h.Events) == 0 || slices.Contains(h.Events, event)) {
			return h
		}
	}
	return nil
}

// newOutgoingHook makes the event for recipient rc of m, or nil when the
// account has no webhook for it.
func newOutgoingHook(st *settings, m *Message, rc *Recipient, o outcome, event string, suppressing bool, now time.Time) *Hook {
	wh := st.outgoingHook(m.Account, event)
	if wh == nil {
		return nil
	}
	p := hookPayload{
		Event: event, DSN: m.DSN, Suppressing: suppressing, QueueMsgID: m.ID, FromID: m.FromID,
		MessageID: m.MessageID, Subject: m.Subject, From: m.MailFrom, Recipient: rc.Address,
		Attempts: rc.Attempts, SMTPEnhancedCode: o.Status, Host: o.Host, Queued: m.Queued, EventTime: now, Extra: m.Extra,
	}
	if !o.Delivered || event != "delivered" {
		p.Attempts++
	}
	if code, err := strconv.Atoi(strings.SplitN(o.Error, " ", 2)[0]); err == nil && code >= 200 && code < 600 {
		p.SMTPCode = code
	}
	if !o.Delivered {
		p.Error = o.Error
	}
	if p.Extra == nil {
		p.Extra = map[string]string{}
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil
	}
	return &Hook{Account: m.Account, URL: wh.URL, Auth: wh.Authorization, Event: event, Payload: b, Queued: now, NextAttempt: now}
}

// insertHook adds h in the write transaction w.
func (w *wtx) insertHook(h *Hook) error {
	b, err := w.tx.CreateBucketIfNotExists([]byte(bucketHooks))
	if err != nil {
		return err
	}
	id, err := nextID(w.tx, metaNexthook)
	if err != nil {
		return err
	}
	h.ID = id
	w.after = append(w.after, w.q.notifyHooks)
	return b.Put(key64(id), h.marshal())
}

// notifyHooks wakes the webhook runner.
func (q *Queue) notifyHooks() {
	select {
	case q.hookChanged <- struct{}{}:
	default:
	}
}

// hookRunner posts due webhook events.
type hookRunner struct {
	sv     *service
	client *http.Client

	posted atomic.Uint64
	failed atomic.Uint64
}

func newHookRunner(sv *service, r dns.Resolver) *hookRunner {
	hr := &hookRunner{sv: sv}
	dialer := &net.Dialer{Timeout: hookTimeout}
	tr := &http.Transport{
		DialContext: resolvingDialer(r, dialer, func(host string, ip netip.Addr) error {
			if !sv.settings.Load().delivery.WebhookAllowPrivate && privateAddr(ip) {
				return fmt.Errorf("webhook host %s has address %s on a loopback, link-local or private network; refused unless [queue] webhook_allow_private is set", host, ip)
			}
			return nil
		}),
		TLSHandshakeTimeout:   hookTimeout,
		ResponseHeaderTimeout: hookTimeout,
		MaxIdleConns:          8,
		IdleConnTimeout:       30 * time.Second,
	}
	hr.client = &http.Client{
		Transport:     tr,
		Timeout:       hookTimeout,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
	return hr
}

// privateAddr reports whether ip is not a public unicast address.
func privateAddr(ip netip.Addr) bool {
	return ip.IsLoopback() || ip.IsPrivate() || ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast() ||
		ip.IsUnspecified() || ip.IsMulticast() || ip.IsInterfaceLocalMulticast()
}

// run posts due events until ctx ends.
func (hr *hookRunner) run(ctx context.Context) {
	q := hr.sv.q
	for {
		hooks, next, err := q.dueHooks(hr.sv.now(), hookBatch)
		if err != nil {
			hr.sv.log.Error("read due webhook events", "err", err)
			next = hr.sv.now().Add(time.Minute)
		}
		// Posted hookParallel at a time, so one slow target does not
		// hold up every other account's events for long.
		var wg sync.WaitGroup
		sem := make(chan struct{}, hookParallel)
		for _, h := range hooks {
			if ctx.Err() != nil {
				break
			}
			sem <- struct{}{}
			wg.Add(1)
			go func() {
				defer func() { <-sem; wg.Done() }()
				hr.post(ctx, h)
			}()
		}
		wg.Wait()
		if ctx.Err() != nil {
			return
		}
		if len(hooks) == hookBatch {
			continue
		}
		var wait <-chan time.Time
		if !next.IsZero() {
			wait = time.After(max(next.Sub(hr.sv.now()), 0))
		}
		select {
		case <-ctx.Done():
			return
		case <-wait:
		case <-q.hookChanged:
		}
	}
}

// post sends one event and records the result.
func (hr *hookRunner) post(ctx context.Context, h *Hook) {
	status, err := hr.send(ctx, h)
	now := hr.sv.now()
	if ctx.Err() != nil {
		return
	}
	h.Attempts++
	if err == nil {
		h.Posted, h.LastError = true, status
		hr.posted.Add(1)
	} else {
		h.LastError = err.Error()
		if h.Attempts < hookMaxAttempts {
			h.NextAttempt = now.Add(hookFirstRetry << (h.Attempts - 1))
		}
	}
	done := h.Posted || h.Attempts >= hookMaxAttempts
	if done && !h.Posted {
		hr.failed.Add(1)
		hr.sv.log.Info("webhook event given up", "account", h.Account, "event", h.Event, "url", h.URL, "attempts", h.Attempts, "err", h.LastError)
	}
	err = hr.sv.q.do(func(w *wtx) error {
		b := w.tx.Bucket([]byte(bucketHooks))
		if b.Get(key64(h.ID)) == nil {
			return nil
		}
		if !done {
			return b.Put(key64(h.ID), h.marshal())
		}
		if err := b.Delete(key64(h.ID)); err != nil {
			return err
		}
		rb, err := w.tx.CreateBucketIfNotExists([]byte(bucketHookRetired))
		if err != nil {
			return err
		}
		k := binary.BigEndian.AppendUint64(nil, uint64(now.UnixNano()))
		return rb.Put(binary.BigEndian.AppendUint64(k, h.ID), h.marshal())
	})
	if err != nil {
		hr.sv.log.Error("record webhook event", "id", h.ID, "err", err)
	}
}

// send posts h and returns the response status, or an error for a
// failure (no answer, or a status other than 2xx).
func (hr *hookRunner) send(ctx context.Context, h *Hook) (string, error) {
	u, err := url.Parse(h.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") {
		return "", fmt.Errorf("webhook URL %q is not an http or https URL", h.URL)
	}
	ctx, cancel := context.WithTimeout(ctx, hookTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, h.URL, bytes.NewReader(h.Payload))
	if err != nil {
		return "", err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "moxd-queue")
	if h.Auth != "" {
		req.Header.Set("Authorization", h.Auth)
	}
	resp, err := hr.client.Do(req)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return "", fmt.Errorf("post to %s: %v", u.Host, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(resp.Body, hookMaxResponse))
	if resp.StatusCode/100 != 2 {
		return "", fmt.Errorf("%s answered %s: %s", u.Host, resp.Status, strings.TrimSpace(string(body)))
	}
	return resp.Status, nil
}

// dueHooks returns up to max events due at now and the earliest later
// due time (zero for none). The hooks bucket is small (events waiting to
// be posted), so it is scanned.
func (q *Queue) dueHooks(now time.Time, max int) ([]*Hook, time.Time, error) {
	var l []*Hook
	var next time.Time
	err := q.db.View(func(tx *bolt.Tx) error {
		b := tx.Bucket([]byte(bucketHooks))
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			h, err := unmarshalHook(binary.BigEndian.Uint64(k), v)
			if err != nil {
				return nil
			}
			if !h.NextAttempt.After(now) && len(l) < max {
				l = append(l, h)
			} else if next.IsZero() || h.NextAttempt.Before(next) {
				next = h.NextAttempt
			}
			return nil
		})
	})
	return l, next, err
}

// expireHooks deletes retired events older than keep.
func (q *Queue) expireHooks(now time.Time, keep time.Duration, max int) (int, error) {
	n := 0
	err := q.do(func(w *wtx) error {
		n = 0
		b := w.tx.Bucket([]byte(bucketHookRetired))
		if b == nil {
			return nil
		}
		limit := binary.BigEndian.AppendUint64(nil, uint64(now.Add(-keep).UnixNano()))
		c := b.Cursor()
		for k, _ := c.First(); k != nil && bytes.Compare(k, limit) < 0 && n < max; k, _ = c.Next() {
			if err := c.Delete(); err != nil {
				return err
			}
			n++
		}
		return nil
	})
	return n, err
}

// Hooks returns the queued (retired false) or retired events of account
// ("" for all), newest retired first, at most max (0: all).
func (q *Queue) Hooks(account string, retired bool, max int) ([]*Hook, error) {
	var l []*Hook
	err := q.db.View(func(tx *bolt.Tx) error {
		name := bucketHooks
		if retired {
			name = bucketHookRetired
		}
		b := tx.Bucket([]byte(name))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		k, v := c.First()
		if retired {
			k, v = c.Last()
		}
		for k != nil && (max == 0 || len(l) < max) {
			id := binary.BigEndian.Uint64(k[len(k)-8:])
			if h, err := unmarshalHook(id, v); err == nil && (account == "" || h.Account == account) {
				l = append(l, h)
			}
			if retired {
				k, v = c.Prev()
			} else {
				k, v = c.Next()
			}
		}
		return nil
	})
	return l, err
}
