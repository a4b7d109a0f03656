package account

// Automatic junk flags and the junk-filter training state of messages.
//
// Implementation notes:
//
//   - A message saved into a mailbox by delivery, APPEND, COPY or MOVE gets
//     the junk keywords that the account's first rule matching the
//     destination mailbox's name asks for, in the transaction that saves
//     it: $Junk (and no $NotJunk), $NotJunk (and no $Junk), or neither. A
//     mailbox no rule matches keeps the keywords the message came with.
//     Imports, RENAME (also of INBOX) and flag changes apply no rule.
//   - A delivery or APPEND whose own keywords include $Junk or $NotJunk
//     keeps them as given: RFC 9051 §6.3.12 has the flags of APPEND set on
//     the new message, and a client (or a filter in the delivering process)
//     that says what the message is knows better than a mailbox name. Other
//     keywords and flags given are kept in any case; the rule only adds or
//     removes the two junk keywords.
//   - Every message record carries a training state: none, ham or spam.
//     putMessage, the one place that writes message records, sets it from
//     the record's keywords, so it changes in the same transaction as any
//     change of $Junk or $NotJunk, by a rule or by a client's STORE. Both
//     keywords at once count as neither: the IANA IMAP keyword registry
//     entry of $Junk and $NotJunk (note 1) says to treat them so.
//   - moxd has no junk filter yet. The state is kept so that one added
//     later can train incrementally: at its start it trains every message
//     by its recorded state, and from then on each change of the state is
//     an exact "untrain the old, train the new" step. Records written before
//     the state existed carry none; they read as the state their keywords
//     imply (trainUnset until then), which is what the store would have
//     recorded.

import (
	"regexp"
	"slices"
)

// The junk keywords (RFC 9051 §2.3.2, IANA IMAP keyword registry).
const (
	KeywordJunk    = "$Junk"
	KeywordNotJunk = "$NotJunk"
)

// JunkFlag is what an automatic junk flag rule does to a message saved into
// a mailbox it matches.
type JunkFlag uint8

// Junk flag actions.
const (
	JunkFlagNeither JunkFlag = iota // remove $Junk and $NotJunk
	JunkFlagJunk                    // set $Junk, remove $NotJunk
	JunkFlagNotJunk                 // set $NotJunk, remove $Junk
)

// JunkRule is one automatic junk flag rule.
type JunkRule struct {
	// Mailbox is matched against the whole mailbox name ("INBOX",
	// "Lists/moxd"), so it must be anchored (^...$) and usually
	// case-insensitive; config.JunkFlagPattern compiles the configured form.
	Mailbox *regexp.Regexp
	Flag    JunkFlag
}

// JunkRules are an account's automatic junk flag settings.
type JunkRules struct {
	Off   bool       // no automatic junk flags
	Rules []JunkRule // in order, first match wins; empty: DefaultJunkRules
}

// DefaultJunkRules returns the rules of an account that configures none:
// Junk and Spam (and the mailboxes below them) get $Junk; INBOX,
// Neutral..., Postmaster, DMARC, TLSRPT and Rejects (and below) neither;
// every other mailbox $NotJunk. Names compare without case.
func DefaultJunkRules() []JunkRule {
	return []JunkRule{
		{regexp.MustCompile(`(?i)^(?:(?:junk|spam)(?:/.*)?)$`), JunkFlagJunk},
		{regexp.MustCompile(`(?i)^(?:(?:inbox|neutral.*|postmaster|dmarc|tlsrpt|rejects)(?:/.*)?)$`), JunkFlagNeither},
		{regexp.MustCompile(`^(?s:.*)$`), JunkFlagNotJunk},
	}
}

// SetJunkRules changes the automatic junk flag rules for later operations.
func (a *Account) SetJunkRules(r JunkRules) {
	if !r.Off && len(r.Rules) == 0 {
		r.Rules = DefaultJunkRules()
	}
	a.junk.Store(&r)
}

// junkFlagFor returns what the rules do to messages saved into mailbox
// name; ok is false when automatic junk flags are off or no rule matches.
func (r *JunkRules) junkFlagFor(name string) (f JunkFlag, ok bool) {
	if r == nil || r.Off {
		return 0, false
	}
	for _, rule := range r.Rules {
		if rule.Mailbox.MatchString(name) {
			return rule.Flag, true
		}
	}
	return 0, false
}

// Training is the junk-filter training state of a message.
type Training uint8

// Training states.
const (
	TrainNone Training = iota // not trained: neither or both junk keywords
	TrainHam                  // trained as ham: $NotJunk
	TrainSpam                 // trained as spam: $Junk

	// trainUnset is what a record from before training states reads as;
	// it is never written.
	trainUnset Training = 0xff
)

func (t Training) String() string {
	switch t {
	case TrainNone:
		return "none"
	case TrainHam:
		return "ham"
	case TrainSpam:
		return "spam"
	}
	return "unknown"
}

// trainingFor is the state the junk keywords ask for. IANA IMAP keyword
// registry, $Junk note 1: both set counts as neither.
func trainingFor(junk, notJunk bool) Training {
	switch {
	case junk && !notJunk:
		return TrainSpam
	case notJunk && !junk:
		return TrainHam
	}
	return TrainNone
}

// trainingOfNames is trainingFor for keyword names.
func trainingOfNames(kw []string) Training {
	var junk, notJunk bool
	for _, k := range kw {
		switch foldKeyword(k) {
		case foldJunk:
			junk = true
		case foldNotJunk:
			notJunk = true
		}
	}
	return trainingFor(junk, notJunk)
}

var (
	foldJunk    = foldKeyword(KeywordJunk)
	foldNotJunk = foldKeyword(KeywordNotJunk)
)

// hasJunkKeyword reports whether kw names $Junk or $NotJunk.
func hasJunkKeyword(kw []string) bool {
	return slices.ContainsFunc(kw, func(k string) bool {
		f := foldKeyword(k)
		return f == foldJunk || f == foldNotJunk
	})
}

// junkIDs returns the keyword ids of $Junk and $NotJunk, 0 for one the
// account does not use.
func (w *wtx) junkIDs() (junk, notJunk uint32) {
	// Without create, keywordID does not fail.
	junk, _ = w.keywordID(KeywordJunk, false)
	notJunk, _ = w.keywordID(KeywordNotJunk, false)
	return junk, notJunk
}

// setTraining sets r.Training from r's keywords.
func (w *wtx) setTraining(r *msgRec) {
	junk, notJunk := w.junkIDs()
	r.Training = trainingFor(junk != 0 && slices.Contains(r.Keywords, junk), notJunk != 0 && slices.Contains(r.Keywords, notJunk))
}

// applyJunkRule returns keyword ids kw changed as the account's junk flag
// rules ask for a message saved into mailbox name.
func (w *wtx) applyJunkRule(name string, kw []uint32) ([]uint32, error) {
	f, ok := w.a.junk.Load().junkFlagFor(name)
	if !ok {
		return kw, nil
	}
	var set string
	switch f {
	case JunkFlagJunk:
		set = KeywordJunk
	case JunkFlagNotJunk:
		set = KeywordNotJunk
	}
	junk, notJunk := w.junkIDs()
	out := make([]uint32, 0, len(kw)+1)
	for _, id := range kw {
		if id != junk && id != notJunk { // keyword ids are never 0
			out = append(out, id)
		}
	}
	if set != "" {
		id, err := w.keywordID(set, true)
		if err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, nil
}

// String returns the form the configuration uses: "$Junk", "$NotJunk" or
// "none".
func (f JunkFlag) String() string {
	switch f {
	case JunkFlagJunk:
		return KeywordJunk
	case JunkFlagNotJunk:
		return KeywordNotJunk
	}
	return "none"
}
