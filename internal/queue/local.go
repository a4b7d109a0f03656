package queue

// Local delivery of outbound messages: recipients at a local domain (and,
// under localserve, every recipient) are handed to store instead of
// leaving the host. Under localserve, recipients with the special local
// parts of README "localserve" get the simulated outcome instead, so DSNs,
// retries and suppression can be tried without a network.

import (
	"context"
	"strconv"
	"strings"
)

// deliverLocal delivers rcpts of m through store.
func (d *deliverer) deliverLocal(ctx context.Context, m *Message, rcpts []*Recipient) []outcome {
	st := d.sv.settings.Load()
	var outs []outcome
	var deliver []*Recipient
	for _, rc := range rcpts {
		if st.localserve {
			if o, ok := localserveOutcome(rc.Address); ok {
				o.Seq, o.Host, o.Transport = rc.Seq, "localserve", "local"
				outs = append(outs, o)
				continue
			}
		}
		deliver = append(deliver, rc)
	}
	if len(deliver) == 0 {
		return outs
	}
	notAttempt := func(err error) []outcome {
		l := failAll(deliver, err, "local")
		for i := range l {
			l[i].NotAttempt = true
		}
		return append(outs, l...)
	}
	conn, err := d.sv.storePeer()
	if err != nil {
		return notAttempt(err)
	}
	res, err := d.sv.retrier.deliver(ctx, conn, m, deliver)
	if err != nil {
		// Recipients store answered before the error keep their result.
		// The others failed temporarily, and not as an attempt when
		// store went away (DESIGN.md §2) or queue is stopping.
		gone := ctx.Err() != nil
		select {
		case <-conn.Done():
			gone = true
		default:
		}
		done := map[uint32]bool{}
		for _, o := range res {
			done[o.Seq] = true
		}
		for _, rc := range deliver {
			if !done[rc.Seq] {
				res = append(res, outcome{Seq: rc.Seq, Error: err.Error(), Status: "4.3.0", NotAttempt: gone})
			}
		}
	}
	for i := range res {
		res[i].Host, res[i].Transport = "store", "local"
		if res[i].Delivered {
			res[i].Error = "250 2.0.0 delivered to the local account"
		} else if res[i].Status == "" {
			res[i].Status = statusOf(res[i].Error)
			if res[i].Status == "" && res[i].Permanent {
				res[i].Status = "5.1.1"
			} else if res[i].Status == "" {
				res[i].Status = "4.2.0"
			}
		}
	}
	return append(outs, res...)
}

// localserveOutcome is the simulated outcome for a special local part
// (the same rules as the smtp role's, README "localserve").
func localserveOutcome(addr string) (outcome, bool) {
	lp, _, err := parseAddress(addr)
	if err != nil {
		return outcome{}, false
	}
	lp = strings.ToLower(lp)
	switch {
	case strings.HasSuffix(lp, "temperror"):
		return outcome{Status: "4.0.0", Error: "451 4.0.0 simulated temporary failure (localserve, local part ends in temperror)"}, true
	case strings.HasSuffix(lp, "permerror"):
		return outcome{Permanent: true, Status: "5.0.0", Error: "550 5.0.0 simulated permanent failure (localserve, local part ends in permerror)"}, true
	case strings.HasSuffix(lp, "timeout"):
		return outcome{Status: "4.4.2", Error: "simulated timeout: no answer from the server (localserve, local part ends in timeout)"}, true
	}
	if len(lp) >= 3 {
		if code, err := strconv.Atoi(lp[len(lp)-3:]); err == nil && code >= 400 && code <= 599 {
			status := strconv.Itoa(code/100) + ".0.0"
			if code == 550 || code == 551 || code == 553 {
				// Lets the suppression list be tried: "no such user".
				status = "5.1.1"
			}
			return outcome{Permanent: code >= 500, Status: status,
				Error: strconv.Itoa(code) + " " + status + " simulated failure (localserve, local part ends in the code)"}, true
		}
	}
	return outcome{}, false
}
