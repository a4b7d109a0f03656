package smtpd

import (
	"strconv"
	"strings"
	"time"

	"moxd/internal/mailproto/smtp"
)

// localserve simulates delivery failures for recipients (and senders) with
// special local parts, so clients and the queue's retries can be tried
// without a network (README "localserve"):
//
//   - a local part ending in "temperror" gets 451, "permerror" 550, a
//     three-digit 4xx or 5xx code that code, "timeout" no answer;
//   - it fails after DATA, unless the local part starts with "mailfrom"
//     (fails at MAIL) or "rcptto" (fails at RCPT).

// localserveTimeout is how long a simulated timeout keeps quiet.
var localserveTimeout = 10 * time.Minute

// localserveFailure returns the simulated failure for p at a command: at
// MAIL with stage "mailfrom", at RCPT with "rcptto", after DATA with "".
// A Reply with Code 0 means "do not answer". nil means no failure.
func localserveFailure(p smtp.Path, stage string) *smtp.Reply {
	lp := strings.ToLower(p.Localpart)
	switch {
	case stage != "" && !strings.HasPrefix(lp, stage):
		return nil
	case stage == "" && (strings.HasPrefix(lp, "mailfrom") || strings.HasPrefix(lp, "rcptto")):
		return nil
	}
	switch {
	case strings.HasSuffix(lp, "temperror"):
		return reply(451, "4.0.0", "simulated temporary failure (localserve, local part ends in temperror)")
	case strings.HasSuffix(lp, "permerror"):
		return reply(550, "5.0.0", "simulated permanent failure (localserve, local part ends in permerror)")
	case strings.HasSuffix(lp, "timeout"):
		return &smtp.Reply{}
	}
	if len(lp) >= 3 {
		if code, err := strconv.Atoi(lp[len(lp)-3:]); err == nil && code >= 400 && code <= 599 {
			enhanced := strconv.Itoa(code/100) + ".0.0"
			return reply(code, enhanced, "simulated failure %d (localserve, local part ends in the code)", code)
		}
	}
	return nil
}
