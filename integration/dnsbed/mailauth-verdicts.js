'use strict';

// Prints the SPF, DKIM and DMARC verdicts of mailauth (an independent
// implementation, npm package pinned in package.json) for the messages of
// the DNSSEC bed test (dnsbed_test.go). It runs inside the bed's network
// namespace and sends every lookup to the validating resolver there.
//
// stdin: a JSON array of cases {name, file, ip, helo, sender}.
// stdout: a JSON array of {name, spf, dkim: [{domain, selector, result,
// comment}], dmarc: {result, policy}}, DKIM results in header order.

const fs = require('node:fs');
const dns = require('node:dns');
const { authenticate } = require('mailauth');

async function main() {
    const cases = JSON.parse(fs.readFileSync(0, 'utf8'));
    const resolver = new dns.promises.Resolver({ timeout: 5000, tries: 2 });
    resolver.setServers(['127.0.0.1:53']);
    const out = [];
    for (const c of cases) {
        const res = await authenticate(fs.readFileSync(c.file), {
            ip: c.ip,
            helo: c.helo,
            sender: c.sender,
            mta: 'mx.moxd.test',
            resolver: (name, rr) => resolver.resolve(name, rr),
            disableArc: true,
            disableBimi: true
        });
        out.push({
            name: c.name,
            spf: res.spf ? res.spf.status.result : '',
            dkim: (res.dkim.results || []).map(r => ({
                domain: r.signingDomain || '',
                selector: r.selector || '',
                result: r.status.result,
                comment: r.status.comment || ''
            })),
            dmarc: res.dmarc ? { result: res.dmarc.status.result, policy: res.dmarc.policy || '' } : { result: '', policy: '' }
        });
    }
    process.stdout.write(JSON.stringify(out) + '\n');
}

main().catch(err => {
    console.error(err);
    process.exit(1);
});
