// Package imapdiff is the differential IMAP test: the same command scripts
// run against Dovecot (the reference, Debian's dovecot-imapd 2.3, started
// on loopback by the tests, PEERS.md §3) and against moxd; responses are
// normalised and compared, allowing only the reviewed differences in
// testdata/allowed-differences.txt.
//
// It is written on the standard library alone: the point is to see the
// servers' bytes, which an IMAP client library would interpret away.
//
// # Script format (testdata/*.imap)
//
// One step per line; blank lines and lines starting with # are ignored.
// A line may start with a session name (a capital letter, optionally digits:
// "A", "B"); without one it belongs to session A. A session connects at its
// first line and its greeting is part of the transcript.
//
//	C: tag COMMAND ...     send a command, read until "tag OK/NO/BAD"
//	L: text                a line of the literal announced by the command
//	                       line before; lines are joined with CRLF, so end a
//	                       message with an empty "L:" line
//	C+: text               the command continues after a literal
//	                       (MULTIAPPEND, several literals)
//	WAIT regexp            read until an untagged response matches (10 s)
//	CAPTURE name regexp    ${name} := group 1 of the first response of the
//	                       previous command that matches
//
// A literal is announced as {n} (checked against the L: data), {n+}
// (LITERAL+: sent without waiting), or {*} / {*+}: size filled in. For a
// synchronising literal the runner waits for "+" (or a tagged NO/BAD, which
// ends the command). "C: x IDLE" returns at the server's "+" and leaves the
// IDLE pending: use WAIT (in the same session) and other sessions' steps,
// then "C: DONE", which reads until x completes. ${USER} and ${PASS} are
// the target's login; each script run logs in as a fresh user.
//
// # Transcripts
//
// Each line is "<session> <kind> <text>": C:, C+:, L: as sent (the script's
// text, ${...} not expanded), S: a server line, S| a line of a server
// literal, S+ the server line continued after a literal, S: <EOF> when the
// server closed, and the directives. Normalize (normalize.go) documents the
// rewriting; testdata/NAME.dovecot.golden is Dovecot's normalised
// transcript, rewritten by
//
//	go test ./integration/imapdiff -update
//
// and otherwise compared. Every script runs twice against one Dovecot (two
// users); the normalised transcripts must be identical, which is what shows
// normalisation is complete.
//
// # Allowed differences (testdata/allowed-differences.txt)
//
// See Rule. Rules transform Dovecot's transcript into the one expected from
// the other server (Rules.Expected), then Compare diffs them. A rule names
// a script, "*" for all, or "script:tag" for the responses of one command
// of a script: a difference that depends on the command, where the same
// line answers other commands too (a "* 0 RECENT" after EXPUNGE, as in
// every SELECT). The tests check that the file parses, names existing
// scripts and, for tagged rules, existing commands, and that every rule
// still matches some Dovecot golden transcript (a tagged rule within its
// command).
//
// # Adding moxd
//
// Append to otherTargets in imapdiff_test.go an entry whose start function
// starts moxd (as the integration package does: free ports, stop by PID,
// skip or fail via skipOrFail) and returns its Target{Name: "moxd", Addr:
// <imap listener>} plus a function that provisions an account for a user
// name and returns (user, password). TestOtherTargets then runs every
// script against it and reports Compare's differences per script, against
// the Dovecot golden file and allowed-differences.txt. Set Target.Norm.Sizes
// if moxd adds headers to stored messages.
package imapdiff
