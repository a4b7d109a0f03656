// Fixture of TestIMAPClientImapflow (integration/imapclients_test.go):
// imapflow against a running moxd, QRESYNC from a client's point of view.
//
//   node qresync.mjs HOST PORT CAFILE USER PASSWORD
//
// Connection A enables CONDSTORE and QRESYNC, opens INBOX and fetches every
// message with its mod-sequence. Connection B deletes the second message
// and flags the third; A records the expunge and flag events it hears while
// its mailbox is open. Then connection C reopens INBOX with the UIDVALIDITY
// and HIGHESTMODSEQ A remembered and records the events that SELECT gave.
// One JSON line on stdout says what happened; the test judges it.

import { readFileSync } from 'node:fs';
import { ImapFlow } from 'imapflow';

const [host, port, caFile, user, pass] = process.argv.slice(2);
const ca = readFileSync(caFile);

function client() {
	return new ImapFlow({
		host,
		port: Number(port),
		secure: true,
		// The certificate names localhost; HOST is an address.
		servername: 'localhost',
		tls: { ca, rejectUnauthorized: true },
		auth: { user, pass },
		qresync: true,
		logger: false,
		connectionTimeout: 10000,
		greetingTimeout: 10000,
		socketTimeout: 20000,
	});
}

// record returns the expunge and flags events of c, as plain values.
function record(c) {
	const events = [];
	c.on('expunge', (ev) => events.push({ event: 'expunge', uid: ev.uid || 0, vanished: !!ev.vanished, earlier: !!ev.earlier }));
	c.on('flags', (ev) => events.push({ event: 'flags', uid: ev.uid || 0, flags: [...ev.flags] }));
	return events;
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

async function main() {
	const result = {};

	const a = client();
	result.live = record(a);
	await a.connect();
	result.enabled = [...a.enabled];
	const box = await a.mailboxOpen('INBOX');
	result.uidValidity = String(box.uidValidity);
	result.highestModseq = String(box.highestModseq ?? '');
	result.messages = [];
	for await (const m of a.fetch('1:*', { uid: true, flags: true })) {
		result.messages.push({ uid: m.uid, modseq: String(m.modseq ?? ''), flags: [...m.flags] });
	}
	if (result.messages.length < 3) {
		throw new Error(`INBOX has ${result.messages.length} messages, the script needs 3`);
	}
	result.deleted = result.messages[1].uid;
	result.flagged = result.messages[2].uid;

	const b = client();
	await b.connect();
	await b.mailboxOpen('INBOX');
	if (!(await b.messageDelete(String(result.deleted), { uid: true }))) {
		throw new Error(`connection B could not delete UID ${result.deleted}`);
	}
	if (!(await b.messageFlagsAdd(String(result.flagged), ['\\Flagged'], { uid: true }))) {
		throw new Error(`connection B could not flag UID ${result.flagged}`);
	}
	await b.logout();

	// A hears of it on its next command (or during IDLE).
	for (let i = 0; i < 25 && !result.live.some((ev) => ev.event === 'expunge'); i++) {
		await a.noop();
		await sleep(200);
	}
	await a.logout();

	const c = client();
	result.resync = record(c);
	await c.connect();
	await c.mailboxOpen('INBOX', { uidValidity: result.uidValidity, changedSince: result.highestModseq });
	await c.logout();

	return result;
}

const timer = setTimeout(() => {
	console.log(JSON.stringify({ error: 'timeout after 45s' }));
	process.exit(2);
}, 45000);

main().then(
	(result) => {
		clearTimeout(timer);
		console.log(JSON.stringify(result));
	},
	(err) => {
		clearTimeout(timer);
		console.log(JSON.stringify({ error: String(err && err.stack ? err.stack : err) }));
		process.exit(1);
	},
);
