// Drives headless Chromium through a WebRTC call whose only path is the TURN server under test.
// Started by ../browser_test.sh, which runs the server and passes its coordinates:
//   TURN_URL                                   the TURN server's URL, e.g.
//                                              turn:127.0.0.1:PORT?transport=udp|tcp or
//                                              turns:127.0.0.1:TLSPORT?transport=tcp
//   TURN_USERNAME, TURN_CREDENTIAL             REST credentials
//   RELAY_PROTOCOL                             udp, tcp or tls: how the selected local relay
//                                              candidate must reach the server (its
//                                              relayProtocol), so a silent fallback fails
//   RELAY_MIN_PORT, RELAY_MAX_PORT             the server's relay port range
//   TLS_SPKI                                   (turns only) base64 SHA-256 of the test
//                                              certificate's SubjectPublicKeyInfo: Chromium
//                                              accepts that one self-signed key and no other
//   CHROMIUM (default /usr/bin/chromium), MESSAGES (default 50), TEST_TIMEOUT_MS (default 90000)
// The page is served from 127.0.0.1 (a secure context, so getUserMedia works) by node's http
// module; all traffic stays on loopback.
import http from 'node:http';
import fs from 'node:fs/promises';
import path from 'node:path';
import { fileURLToPath } from 'node:url';

const here = path.dirname(fileURLToPath(import.meta.url));

function fail(message) {
  console.error(`FAIL: ${message}`);
  process.exitCode = 1;
}

function requiredEnv(name) {
  const value = process.env[name];
  if (!value) {
    console.error(`FAIL: environment variable ${name} is not set (run via browser_test.sh)`);
    process.exit(2);
  }
  return value;
}

let chromium;
try {
  ({ chromium } = await import('playwright-core'));
} catch (e) {
  console.error(`FAIL: cannot load playwright-core (${e.message}); run 'npm ci' in ${here}`);
  process.exit(2);
}

const cfg = {
  turnUrl: requiredEnv('TURN_URL'),
  username: requiredEnv('TURN_USERNAME'),
  credential: requiredEnv('TURN_CREDENTIAL'),
  messages: Number(process.env.MESSAGES || 50),
  timeoutMs: Number(process.env.TEST_TIMEOUT_MS || 90000),
};
const relayMin = Number(requiredEnv('RELAY_MIN_PORT'));
// The relayed address: 127.0.0.1, or the DPDK data plane's address in the dpdk mode.
const relayHost = process.env.RELAY_HOST || '127.0.0.1';
const relayMax = Number(requiredEnv('RELAY_MAX_PORT'));
const relayProtocol = requiredEnv('RELAY_PROTOCOL');
if (!['udp', 'tcp', 'tls'].includes(relayProtocol)) {
  console.error(`FAIL: RELAY_PROTOCOL must be udp, tcp or tls, not '${relayProtocol}'`);
  process.exit(2);
}
const tlsSpki = process.env.TLS_SPKI || '';
if (relayProtocol === 'tls' && !tlsSpki) {
  console.error('FAIL: TLS_SPKI is not set (turns needs the test certificate\'s SPKI hash)');
  process.exit(2);
}
const executablePath = process.env.CHROMIUM || '/usr/bin/chromium';

// Static files of the test page; nothing else is served.
const files = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/index.html': ['index.html', 'text/html; charset=utf-8'],
  '/relay_test.js': ['relay_test.js', 'text/javascript; charset=utf-8'],
  '/favicon.ico': null,
};
const server = http.createServer(async (req, res) => {
  const entry = files[new URL(req.url, 'http://127.0.0.1').pathname];
  if (entry === null) {
    res.writeHead(204).end();  // favicon: nothing, but no 404 noise in the log
    return;
  }
  if (!entry) {
    res.writeHead(404).end();
    return;
  }
  const body = await fs.readFile(path.join(here, 'page', entry[0]));
  res.writeHead(200, { 'content-type': entry[1], 'cache-control': 'no-store' }).end(body);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
const pageUrl = `http://127.0.0.1:${server.address().port}/`;

let browser;
try {
  browser = await chromium.launch({
    executablePath,
    headless: true,
    timeout: 60000,
    args: [
      '--no-sandbox',
      '--disable-gpu',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--use-fake-device-for-media-stream',
      '--use-fake-ui-for-media-stream',
      // WebRTC ignores loopback interfaces when it picks the local sockets to gather from;
      // without this, in a namespace that has only loopback it gathers no candidate at all,
      // and elsewhere it talks to the TURN server from a non-loopback address.
      '--allow-loopback-in-peer-connection',
      // turns: trust exactly the test certificate's key (its SPKI hash), nothing else. Chromium
      // honours this only together with --user-data-dir, which playwright always passes.
      ...(tlsSpki ? [`--ignore-certificate-errors-spki-list=${tlsSpki}`] : []),
    ],
  });
  const page = await browser.newPage();
  page.on('console', (msg) => console.log(`[page] ${msg.text()}`));
  page.on('pageerror', (err) => console.log(`[page error] ${err.message}`));
  await page.goto(pageUrl);
  const secure = await page.evaluate(() => window.isSecureContext);
  if (!secure) throw new Error(`${pageUrl} is not a secure context; getUserMedia would fail`);

  console.log(`browser: ${browser.version()}; TURN ${cfg.turnUrl} (relay protocol ` +
              `${relayProtocol}); relay ports ${relayMin}-${relayMax}; ${cfg.messages} data ` +
              'channel messages');
  const result = await page.evaluate((c) => window.runRelayTest(c), cfg);
  console.log(`result: ${JSON.stringify(result, null, 2)}`);
  check(result);
} catch (e) {
  fail(e.stack || String(e));
} finally {
  if (browser) await browser.close();
  server.close();
}

function check(result) {
  if (!result.ok) fail(`in-page test failed: ${result.error}`);
  const relayCandidates = (name) => result.candidates[name].filter((c) => / typ relay/.test(c));
  for (const name of ['caller', 'callee']) {
    if (relayCandidates(name).length === 0) {
      fail(`${name} gathered no relay candidate (ICE errors: ${JSON.stringify(result.iceErrors)})`);
    }
    const nonRelay = result.candidates[name].filter((c) => !/ typ relay/.test(c));
    if (nonRelay.length > 0) fail(`${name} gathered non-relay candidates: ${nonRelay}`);
  }
  if (!result.dataChannel || result.dataChannel.received !== cfg.messages) {
    fail(`data channel echoed ${result.dataChannel?.received ?? 0} of ${cfg.messages} messages`);
  }
  const video = result.media?.video;
  const audio = result.media?.audio;
  if (!video || !(video.framesDecoded > 0)) fail(`no video frame decoded: ${JSON.stringify(video)}`);
  if (!audio || !(audio.packetsReceived > 0)) {
    fail(`no audio packet received: ${JSON.stringify(audio)}`);
  }
  for (const name of ['caller', 'callee']) {
    const pair = result.selected?.[name];
    if (!pair) {
      fail(`${name}: no selected candidate pair`);
      continue;
    }
    for (const side of ['local', 'remote']) {
      const c = pair[side];
      const where = `${name} selected pair ${side} candidate ${JSON.stringify(c)}`;
      if (!c) {
        fail(`${where}: missing`);
        continue;
      }
      if (c.candidateType !== 'relay') fail(`${where}: type is not relay`);
      if (c.address !== relayHost) fail(`${where}: address is not ${relayHost}`);
      if (!(c.port >= relayMin && c.port <= relayMax)) {
        fail(`${where}: port outside the relay range ${relayMin}-${relayMax}`);
      }
    }
    // How the local relay candidate talks to the TURN server (RTCIceCandidateStats
    // relayProtocol). It must be the mode's protocol: a silent fallback fails the test.
    if (pair.local?.relayProtocol !== relayProtocol) {
      fail(`${name}: selected local relay candidate reaches the TURN server over ` +
           `${pair.local?.relayProtocol}, want ${relayProtocol}`);
    }
    if (pair.local?.url !== undefined && pair.local.url !== cfg.turnUrl) {
      fail(`${name}: selected local relay candidate came from ${pair.local.url}, ` +
           `want ${cfg.turnUrl}`);
    }
  }
  if (!process.exitCode) {
    const pair = result.selected.caller;
    console.log(`PASS: ${result.dataChannel.received} data channel echoes, ` +
                `${video.framesDecoded} video frames decoded, ${audio.packetsReceived} audio ` +
                `packets; caller ${pair.local.address}:${pair.local.port} <-> ` +
                `${pair.remote.address}:${pair.remote.port} (both relayed, client to ` +
                `server over ${pair.local.relayProtocol})`);
  }
}
