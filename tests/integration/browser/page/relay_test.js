// In-page half of the browser relay test. Two RTCPeerConnections ("caller" and "callee") with
// iceTransportPolicy 'relay' can only reach each other through TURN allocations, so everything
// checked here (data channel echo, decoded video, received audio) crossed the server under test
// twice: caller -> its relay -> callee's relay -> callee.
'use strict';

function log(...args) {
  const line = args.map((a) => (typeof a === 'string' ? a : JSON.stringify(a))).join(' ');
  console.log(line);
  document.getElementById('log').textContent += line + '\n';
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

// Polls `probe` (async, returns a truthy value when done) until it succeeds or the deadline.
async function waitFor(what, probe, deadline, intervalMs = 100) {
  for (;;) {
    const value = await probe();
    if (value) return value;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(intervalMs);
  }
}

function withDeadline(what, promise, deadline) {
  let timer;
  const timeout = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out waiting for ${what}`)),
                       Math.max(0, deadline - Date.now()));
  });
  return Promise.race([promise, timeout]).finally(() => clearTimeout(timer));
}

// Describes the selected candidate pair of `pc` from its stats: the transport's
// selectedCandidatePairId names the pair, whose ids name the local and remote candidates.
async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pairId = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pairId = s.selectedCandidatePairId;
  });
  if (!pairId) return null;
  const pair = stats.get(pairId);
  const describe = (c) => c && {
    candidateType: c.candidateType,
    address: c.address ?? c.ip,
    port: c.port,
    protocol: c.protocol,
    relayProtocol: c.relayProtocol,
    url: c.url,
  };
  return {
    state: pair.state,
    bytesSent: pair.bytesSent,
    bytesReceived: pair.bytesReceived,
    local: describe(stats.get(pair.localCandidateId)),
    remote: describe(stats.get(pair.remoteCandidateId)),
  };
}

async function inboundMedia(pc) {
  const stats = await pc.getStats();
  const media = { video: null, audio: null };
  stats.forEach((s) => {
    if (s.type !== 'inbound-rtp') return;
    const kind = s.kind ?? s.mediaType;
    if (kind === 'video') {
      media.video = { framesDecoded: s.framesDecoded ?? 0, packetsReceived: s.packetsReceived ?? 0,
                      bytesReceived: s.bytesReceived ?? 0, frameWidth: s.frameWidth };
    } else if (kind === 'audio') {
      media.audio = { packetsReceived: s.packetsReceived ?? 0, bytesReceived: s.bytesReceived ?? 0 };
    }
  });
  return media;
}

// Sends `count` numbered messages of varying size over `channel` and waits until each came back
// unchanged and in order (the callee echoes; the channel is ordered and reliable).
async function echoRoundTrip(channel, count, deadline) {
  const sent = [];
  let received = 0;
  let mismatch = null;
  const done = new Promise((resolve, reject) => {
    channel.onmessage = (event) => {
      const expected = sent[received];
      if (event.data !== expected) {
        mismatch = `message ${received}: got ${String(event.data).slice(0, 40)}..., ` +
                   `want ${String(expected).slice(0, 40)}...`;
        reject(new Error(mismatch));
        return;
      }
      received += 1;
      if (received === count) resolve();
    };
  });
  for (let i = 0; i < count; i++) {
    // Sizes from 1 to ~1200 bytes, so some messages fill most of a relayed datagram.
    const size = 1 + ((i * 397) % 1200);
    const body = `${i}:` + String.fromCharCode(97 + (i % 26)).repeat(size);
    sent.push(body);
    channel.send(body);
  }
  await withDeadline(`${count} data channel echoes (${received} so far)`, done, deadline);
  return { sent: sent.length, received };
}

window.runRelayTest = async function runRelayTest(cfg) {
  const deadline = Date.now() + cfg.timeoutMs;
  const result = {
    candidates: { caller: [], callee: [] },
    iceErrors: [],
    connectionStates: { caller: [], callee: [] },
  };
  const rtcConfig = {
    iceServers: [{ urls: cfg.turnUrl, username: cfg.username, credential: cfg.credential }],
    iceTransportPolicy: 'relay',
  };
  const caller = new RTCPeerConnection(rtcConfig);
  const callee = new RTCPeerConnection(rtcConfig);
  window.testPeers = { caller, callee };

  const wire = (from, to, name) => {
    from.onicecandidate = (event) => {
      if (!event.candidate) return;
      result.candidates[name].push(event.candidate.candidate);
      to.addIceCandidate(event.candidate).catch((e) => log(`${name} addIceCandidate: ${e}`));
    };
    from.onicecandidateerror = (event) => {
      result.iceErrors.push({ pc: name, url: event.url, errorCode: event.errorCode,
                              errorText: event.errorText, address: event.address });
    };
    from.onconnectionstatechange = () => {
      result.connectionStates[name].push(from.connectionState);
      log(`${name} connectionState ${from.connectionState}`);
    };
  };
  wire(caller, callee, 'caller');
  wire(callee, caller, 'callee');

  // Fake camera and microphone (--use-fake-device-for-media-stream): a test pattern and a beep.
  const stream = await navigator.mediaDevices.getUserMedia({ audio: true, video: true });
  for (const track of stream.getTracks()) caller.addTrack(track, stream);
  result.sentTracks = stream.getTracks().map((t) => t.kind);

  callee.ontrack = (event) => {
    if (event.track.kind === 'video') {
      document.getElementById('remote').srcObject = event.streams[0];
    }
  };
  callee.ondatachannel = (event) => {
    const echo = event.channel;
    echo.onmessage = (e) => echo.send(e.data);
  };
  const channel = caller.createDataChannel('echo', { ordered: true });
  const channelOpen = new Promise((resolve) => { channel.onopen = resolve; });

  const offer = await caller.createOffer();
  await caller.setLocalDescription(offer);
  await callee.setRemoteDescription(offer);
  const answer = await callee.createAnswer();
  await callee.setLocalDescription(answer);
  await caller.setRemoteDescription(answer);

  try {
    await withDeadline('the data channel to open (ICE through the relay)', channelOpen, deadline);
    log('data channel open');
    result.dataChannel = await echoRoundTrip(channel, cfg.messages, deadline);
    log(`data channel: ${result.dataChannel.received}/${cfg.messages} echoes`);

    result.media = await waitFor('decoded video frames and received audio packets', async () => {
      const media = await inboundMedia(callee);
      result.media = media;
      return media.video && media.video.framesDecoded > 0 &&
             media.audio && media.audio.packetsReceived > 0 ? media : null;
    }, deadline);
    log(`media: ${JSON.stringify(result.media)}`);

    result.selected = {
      caller: await waitFor('caller selected pair', () => selectedPair(caller), deadline),
      callee: await waitFor('callee selected pair', () => selectedPair(callee), deadline),
    };
    result.ok = true;
  } catch (e) {
    result.ok = false;
    result.error = String(e && e.message ? e.message : e);
    result.selected = { caller: await selectedPair(caller), callee: await selectedPair(callee) };
  } finally {
    result.iceConnectionState = { caller: caller.iceConnectionState,
                                  callee: callee.iceConnectionState };
    for (const track of stream.getTracks()) track.stop();
    caller.close();
    callee.close();
  }
  return result;
};
