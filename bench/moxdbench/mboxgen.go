package main

// mboxgen writes the test mbox for P6: realistic messages from a seeded
// generator, so every run and every machine imports the same bytes. The
// messages are written with moxd's own mbox writer (mboxrd, LF line endings),
// which Dovecot reads as an ordinary mbox.
//
// The mix, by message count: about 55% plain text, 35% multipart/alternative
// (text and HTML), 10% with a base64 attachment. Sizes run from 2 KiB to
// 20 KiB with most of them small, about 4 KiB on average, so 100000 messages
// make a file of about 400 MiB. About half the messages are \Seen, some are
// answered or flagged, a few carry keywords; these go into Status, X-Status
// and X-Keywords fields.

import (
	"bufio"
	"encoding/base64"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"strings"
	"time"

	"moxd/internal/mailproto/mbox"
)

// words is the vocabulary of generated text.
var words = strings.Fields(`the a of to and in is it that for on with as was be at by this have from or
	one had not but what all were when we there can an your which their said if do will each about how up
	out them then she many some so these would other into has more her two like him see time could no make
	than first been its who now people my made over did down only way find use may water long little very
	after words called just where most know get through back much before go good new write our used me man
	too any day same right look think also around another came come work three word must because does part
	meeting invoice report schedule project budget review draft server mailbox delivery release question
	thanks regards tomorrow attached please update agenda minutes contract shipment order account`)

// mboxGen holds the generator's state for one file.
type mboxGen struct {
	rng *rand.Rand
	buf strings.Builder
}

// writeMbox writes n messages generated from seed to w. It returns the
// number of bytes of message data generated (before mbox framing).
func writeMbox(w io.Writer, n int, seed uint64) (int64, error) {
	g := &mboxGen{rng: rand.New(rand.NewPCG(seed, 0x6d6f7864))}
	mw := mbox.NewWriter(w)
	start := time.Date(2019, 1, 1, 0, 0, 0, 0, time.UTC)
	var total int64
	for i := range n {
		received := start.Add(time.Duration(i)*47*time.Second + time.Duration(g.rng.IntN(40))*time.Second)
		msg := g.message(i, received)
		total += int64(len(msg))
		var flags mbox.Flags
		flags.Seen = g.rng.IntN(2) == 0
		flags.Answered = flags.Seen && g.rng.IntN(8) == 0
		flags.Flagged = g.rng.IntN(20) == 0
		var kw []string
		if g.rng.IntN(25) == 0 {
			kw = append(kw, []string{"$Label1", "$Junk", "NonJunk", "work"}[g.rng.IntN(4)])
		}
		if err := mw.WriteMessage(g.address(i+7), received, flags, kw, strings.NewReader(msg)); err != nil {
			return total, fmt.Errorf("message %d: %w", i, err)
		}
	}
	return total, mw.Flush()
}

func (g *mboxGen) address(i int) string {
	return fmt.Sprintf("%s.%s%d@%s", words[g.rng.IntN(len(words))], words[(i*7)%len(words)], i%997, []string{"example.org", "example.com", "example.net", "mail.example"}[i%4])
}

// bodySize picks the size of the text part: mostly 1.5–2 KiB, some up to
// 9 KiB.
func (g *mboxGen) bodySize() int {
	switch r := g.rng.IntN(100); {
	case r < 70:
		return 1550 + g.rng.IntN(500)
	case r < 95:
		return 2000 + g.rng.IntN(2500)
	default:
		return 4500 + g.rng.IntN(4500)
	}
}

// text returns about size bytes of lines of words, each under 76 characters,
// with paragraphs; "From " starts a line now and then, as in real mail, so the
// mboxrd quoting is exercised.
func (g *mboxGen) text(size int) string {
	var b strings.Builder
	line := 0
	for b.Len() < size {
		w := words[g.rng.IntN(len(words))]
		if line == 0 && g.rng.IntN(300) == 0 {
			w = "From"
		}
		if line > 0 && line+1+len(w) > 72 {
			b.WriteString("\r\n")
			line = 0
			if g.rng.IntN(8) == 0 {
				b.WriteString("\r\n")
			}
		}
		if line > 0 {
			b.WriteByte(' ')
			line++
		}
		b.WriteString(w)
		line += len(w)
	}
	b.WriteString("\r\n")
	return b.String()
}

// message returns message i with CRLF line endings.
func (g *mboxGen) message(i int, received time.Time) string {
	b := &g.buf
	b.Reset()
	from, to := g.address(i+7), g.address(i+11)
	date := received.Add(-time.Duration(1+g.rng.IntN(300)) * time.Second)
	fmt.Fprintf(b, "Return-Path: <%s>\r\n", from)
	fmt.Fprintf(b, "Received: from mx%d.example.net (mx%d.example.net [192.0.2.%d])\r\n\tby mail.example with ESMTPS id %08x\r\n\tfor <%s>; %s\r\n",
		i%9, i%9, 1+i%250, g.rng.Uint32(), to, received.Format(time.RFC1123Z))
	fmt.Fprintf(b, "Received: from [198.51.100.%d] by mx%d.example.net with ESMTPSA id %08x;\r\n\t%s\r\n", 1+i%250, i%9, g.rng.Uint32(), date.Format(time.RFC1123Z))
	fmt.Fprintf(b, "Date: %s\r\nFrom: %s <%s>\r\nTo: <%s>\r\n", date.Format(time.RFC1123Z), strings.ToUpper(from[:1])+from[1:strings.IndexByte(from, '.')], from, to)
	subject := strings.Join([]string{words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))], words[g.rng.IntN(len(words))]}, " ")
	if g.rng.IntN(3) == 0 {
		subject = "Re: " + subject
	}
	fmt.Fprintf(b, "Subject: %s %d\r\nMessage-ID: <%d.%08x@mail.example>\r\nMIME-Version: 1.0\r\n", subject, i, i, g.rng.Uint32())
	text := g.text(g.bodySize())
	switch r := g.rng.IntN(100); {
	case r < 55:
		b.WriteString("Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n")
		b.WriteString(text)
	case r < 90:
		boundary := fmt.Sprintf("alt-%d-%08x", i, g.rng.Uint32())
		fmt.Fprintf(b, "Content-Type: multipart/alternative; boundary=%q\r\n\r\n", boundary)
		fmt.Fprintf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s", boundary, text)
		html := "<html><body><p>" + strings.ReplaceAll(text, "\r\n\r\n", "</p>\r\n<p>") + "</p></body></html>\r\n"
		fmt.Fprintf(b, "--%s\r\nContent-Type: text/html; charset=utf-8\r\n\r\n%s--%s--\r\n", boundary, html, boundary)
	default:
		boundary := fmt.Sprintf("mix-%d-%08x", i, g.rng.Uint32())
		fmt.Fprintf(b, "Content-Type: multipart/mixed; boundary=%q\r\n\r\n", boundary)
		short := text[:min(len(text), 600)]
		fmt.Fprintf(b, "--%s\r\nContent-Type: text/plain; charset=utf-8\r\n\r\n%s\r\n", boundary, short)
		att := make([]byte, 2500+g.rng.IntN(3000))
		for j := range att {
			att[j] = byte(g.rng.Uint32())
		}
		fmt.Fprintf(b, "--%s\r\nContent-Type: application/pdf; name=\"report-%d.pdf\"\r\nContent-Disposition: attachment; filename=\"report-%d.pdf\"\r\nContent-Transfer-Encoding: base64\r\n\r\n", boundary, i, i)
		enc := base64.StdEncoding.EncodeToString(att)
		for len(enc) > 76 {
			b.WriteString(enc[:76])
			b.WriteString("\r\n")
			enc = enc[76:]
		}
		fmt.Fprintf(b, "%s\r\n--%s--\r\n", enc, boundary)
	}
	return b.String()
}

// mboxGenerate is "moxdbench mboxgen": it writes the file and prints what it
// wrote.
func mboxGenerate(path string, n int, seed uint64) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("mboxgen: %w (change -o)", err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	data, err := writeMbox(bw, n, seed)
	if err == nil {
		err = bw.Flush()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		os.Remove(path)
		return fmt.Errorf("mboxgen %s: %w", path, err)
	}
	fi, err := os.Stat(path)
	if err != nil {
		return err
	}
	fmt.Fprintf(os.Stderr, "# mboxgen: %d messages, %.1f MiB of messages (%.1f KiB average), file %s of %.1f MiB, seed %d\n",
		n, float64(data)/(1<<20), float64(data)/float64(max(n, 1))/1024, path, float64(fi.Size())/(1<<20), seed)
	return nil
}
