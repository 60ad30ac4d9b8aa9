// replication.test.js — PouchDB (local LevelDB) replicates to and from kz's db both ways: documents, histories, deletions, conflicts, binary attachments, live sync.
'use strict';
const { test, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

const { startKzDb } = require('./lib/kzdb');
const { PouchDB, remoteDb, http } = require('./lib/compat');
const { assertSameDbs, snapshot, sha256 } = require('./lib/compare');

let server;
let tmp;
let counter = 0;

before(async () => {
  server = await startKzDb();
  tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kz-pouchdb-local-'));
});

after(async () => {
  if (tmp) fs.rmSync(tmp, { recursive: true, force: true });
  if (server) await server.stop();
});

function localDb() {
  return new PouchDB(path.join(tmp, `local${++counter}`));
}
function newRemote() {
  return remoteDb(server.url, `rep-${++counter}`);
}

// Deterministic binary attachment bodies (every byte value appears).
function bytes(n, seed) {
  const out = Buffer.alloc(n);
  let x = seed >>> 0 || 1;
  for (let i = 0; i < n; i++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[i] = i < 256 ? (i + seed) & 0xff : x & 0xff;
  }
  return out;
}

function att(buf, type = 'application/octet-stream') {
  return { content_type: type, data: buf };
}

// CouchDB's winner: live leaves before deleted ones, then the highest
// generation, then the highest revision hash (as a string).
function expectedWinner(leaves) {
  return leaves.slice().sort((a, b) => {
    if (a.deleted !== b.deleted) return a.deleted ? 1 : -1;
    const [ga, ha] = a.rev.split('-');
    const [gb, hb] = b.rev.split('-');
    if (Number(ga) !== Number(gb)) return Number(gb) - Number(ga);
    return ha < hb ? 1 : ha > hb ? -1 : 0;
  })[0].rev;
}

async function checkOk(result, what) {
  assert.equal(result.ok, true, `${what}: replication not ok: ${JSON.stringify(result.errors)}`);
  assert.deepEqual(result.errors, [], `${what}: replication errors`);
  assert.equal(result.doc_write_failures, 0, `${what}: write failures`);
}

test('push: documents, histories, deletions and binary attachments go from PouchDB to kz', async () => {
  const local = localDb();
  const remote = newRemote();
  const docs = [];
  for (let i = 0; i < 40; i++) docs.push({ _id: `doc${String(i).padStart(3, '0')}`, n: i, tags: ['a', { b: i }], s: 'é✓ \u{1F4DE} "q" \\ \n' });
  docs.push({ _id: '_design/kz', views: { by_n: { map: 'function (d) { emit(d.n, null); }' } } });
  docs.push({ _id: 'with/slash and space', n: -1 });
  docs.push({ _id: 'att-big', _attachments: { 'blob.bin': att(bytes(150000, 7)), 'one.bin': att(Buffer.from([0xff])) } });
  docs.push({ _id: 'att-png', kind: 'prompt', _attachments: { 'p.png': att(bytes(3000, 9), 'image/png'), 'note.txt': att(Buffer.from('hello\n'), 'text/plain') } });
  const put = await local.bulkDocs(docs);
  for (const r of put) assert.ok(r.ok, JSON.stringify(r));
  // Histories: doc000..doc009 edited three more times (4 generations).
  for (let i = 0; i < 10; i++) {
    for (let k = 0; k < 3; k++) {
      const d = await local.get(`doc${String(i).padStart(3, '0')}`);
      d.edit = k;
      await local.put(d);
    }
  }
  // Deletions.
  for (const id of ['doc010', 'doc011', 'doc012']) await local.remove(await local.get(id));

  const r1 = await local.replicate.to(remote);
  await checkOk(r1, 'first push');
  assert.equal(r1.docs_written, docs.length);
  const snap = await assertSameDbs(local, remote, 'after the first push');
  assert.equal(snap.docs.doc003.leaves[0]._revisions.ids.length, 4, 'the 4-revision history arrived');
  assert.equal(snap.docs.doc010.deleted, true);
  assert.equal(snap.docs['att-big'].leaves[0].atts['blob.bin'].sha256, sha256(bytes(150000, 7)));

  // Bytes through plain HTTP, exactly as stored.
  const raw = await http(server.url, 'GET', `/${remote.name.split('/').pop()}/att-big/blob.bin`);
  assert.equal(raw.status, 200);
  assert.ok(raw.raw.equals(bytes(150000, 7)), 'attachment bytes over plain HTTP');

  // Incremental: edit, delete, add and drop attachments, then push again.
  const big = await local.get('att-big');
  delete big._attachments['one.bin'];
  big._attachments['two.bin'] = att(bytes(10, 3));
  big.edited = true;
  await local.put(big);
  await local.remove(await local.get('doc020'));
  await local.put({ _id: 'late', x: 1 });
  const d5 = await local.get('doc005');
  d5.more = 'x'.repeat(5000);
  await local.put(d5);
  const r2 = await local.replicate.to(remote);
  await checkOk(r2, 'second push');
  assert.equal(r2.docs_written, 4, 'only the changed documents are sent again');
  await assertSameDbs(local, remote, 'after the second push');

  // A third push has nothing to do.
  const r3 = await local.replicate.to(remote);
  await checkOk(r3, 'third push');
  assert.equal(r3.docs_written, 0);
});

test('pull: documents written over plain HTTP on kz come to PouchDB with their histories', async () => {
  const remote = newRemote();
  const name = decodeURIComponent(remote.name.split('/').pop());
  const p = `/${encodeURIComponent(name)}`;
  const created = await http(server.url, 'PUT', p);
  assert.equal(created.status, 201, JSON.stringify(created.body));
  const revs = {};
  for (let i = 0; i < 25; i++) {
    const r = await http(server.url, 'PUT', `${p}/u${i}`, { i, nested: { deep: [i, String(i)] } });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    revs[`u${i}`] = r.body.rev;
  }
  for (let i = 0; i < 5; i++) {
    let rev = revs[`u${i}`];
    for (let k = 0; k < 2; k++) {
      const r = await http(server.url, 'PUT', `${p}/u${i}?rev=${rev}`, { i, k });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      rev = r.body.rev;
    }
    revs[`u${i}`] = rev;
  }
  for (const id of ['u20', 'u21']) {
    const r = await http(server.url, 'DELETE', `${p}/${id}?rev=${revs[id]}`);
    assert.equal(r.status, 200, JSON.stringify(r.body));
  }
  // A binary attachment added with PUT /db/doc/att?rev=, a second one to a new doc.
  const png = bytes(40000, 11);
  let r = await http(server.url, 'PUT', `${p}/u7/greeting.wav?rev=${revs.u7}`, png, { 'Content-Type': 'audio/x-wav' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  r = await http(server.url, 'PUT', `${p}/media1/moh.mp3`, bytes(777, 5), { 'Content-Type': 'audio/mpeg' });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  // _bulk_docs.
  r = await http(server.url, 'POST', `${p}/_bulk_docs`, { docs: [{ _id: 'b1', v: 1 }, { _id: 'b2', v: 2 }] });
  assert.equal(r.status, 201);

  const local = localDb();
  const r1 = await local.replicate.from(remote);
  await checkOk(r1, 'first pull');
  const snap = await assertSameDbs(remote, local, 'after the first pull');
  assert.equal(snap.docs.u2.leaves[0]._revisions.ids.length, 3);
  assert.equal(snap.docs.u21.deleted, true);
  const wav = await local.getAttachment('u7', 'greeting.wav');
  assert.ok(wav.equals(png), 'attachment bytes in PouchDB');
  const u7 = await local.get('u7');
  assert.equal(u7._attachments['greeting.wav'].content_type, 'audio/x-wav');
  assert.equal(u7._attachments['greeting.wav'].digest, `md5-${crypto.createHash('md5').update(png).digest('base64')}`);

  // Incremental pull.
  r = await http(server.url, 'PUT', `${p}/u1?rev=${revs.u1}`, { i: 1, again: true });
  assert.equal(r.status, 201);
  r = await http(server.url, 'DELETE', `${p}/b1?rev=${(await http(server.url, 'GET', `${p}/b1`)).body._rev}`);
  assert.equal(r.status, 200);
  const r2 = await local.replicate.from(remote);
  await checkOk(r2, 'second pull');
  assert.equal(r2.docs_written, 2);
  await assertSameDbs(remote, local, 'after the second pull');
});

test('conflicts: the same documents edited on both sides end with the same winner and _conflicts everywhere', async () => {
  const local = localDb();
  const remote = newRemote();
  await local.bulkDocs([
    { _id: 'deeper', v: 0 },
    { _id: 'tie', v: 0 },
    { _id: 'del-vs-edit', v: 0 },
    { _id: 'att-conflict', v: 0, _attachments: { 'a.bin': att(bytes(100, 1)) } },
  ]);
  await checkOk(await local.replicate.to(remote), 'initial push');
  await assertSameDbs(local, remote, 'before the edits');

  // Local: two edits of "deeper", one of "tie", deletes "del-vs-edit",
  // replaces the attachment of "att-conflict".
  let d = await local.get('deeper'); d.side = 'local'; d = { ...d, _rev: (await local.put(d)).rev };
  d.again = 1; await local.put(d);
  const tl = await local.get('tie'); tl.side = 'local'; await local.put(tl);
  await local.remove(await local.get('del-vs-edit'));
  const al = await local.get('att-conflict');
  al._attachments['a.bin'] = att(bytes(100, 2)); await local.put(al);
  // Remote, through PouchDB's HTTP adapter: one edit each.
  for (const id of ['deeper', 'tie', 'del-vs-edit']) {
    const x = await remote.get(id); x.side = 'remote'; await remote.put(x);
  }
  const ar = await remote.get('att-conflict');
  ar._attachments = { 'a.bin': att(bytes(100, 3)), 'b.bin': att(bytes(5, 4)) };
  await remote.put(ar);

  // Both ways.
  await checkOk(await local.replicate.to(remote), 'push of the conflicting edits');
  await checkOk(await local.replicate.from(remote), 'pull of the conflicting edits');
  const snap = await assertSameDbs(local, remote, 'after replicating both ways');
  for (const id of ['deeper', 'tie', 'del-vs-edit', 'att-conflict']) {
    const e = snap.docs[id];
    assert.equal(e.leaves.length, 2, `${id}: two leaves`);
    const want = expectedWinner(e.leaves.map((l) => ({ rev: l._rev, deleted: l._deleted })));
    assert.equal(e.winner, want, `${id}: CouchDB's winner`);
  }
  assert.equal(snap.docs.deeper.winner.split('-')[0], '3', 'the longer branch wins');
  assert.equal(snap.docs['del-vs-edit'].deleted, false, 'an edit beats a deletion');
  assert.deepEqual(snap.docs['del-vs-edit'].conflicts, [], 'a deleted leaf is not a conflict');
  assert.equal(snap.docs.tie.conflicts.length, 1);
  assert.equal(snap.docs.deeper.conflicts.length, 1);
  // Plain HTTP sees the same as PouchDB's HTTP adapter.
  const dbp = `/${remote.name.split('/').pop()}`;
  const h = await http(server.url, 'GET', `${dbp}/tie?conflicts=true`);
  assert.equal(h.status, 200);
  assert.equal(h.body._rev, snap.docs.tie.winner);
  assert.deepEqual(h.body._conflicts, snap.docs.tie.conflicts);

  // Resolve on kz (delete the losing leaves), replicate back: no conflicts left on either side.
  for (const id of ['tie', 'deeper', 'att-conflict']) {
    for (const rev of snap.docs[id].conflicts) await remote.remove(id, rev);
  }
  await checkOk(await local.replicate.from(remote), 'pull of the resolutions');
  await checkOk(await local.replicate.to(remote), 'push after the resolutions');
  const after = await assertSameDbs(local, remote, 'after resolving');
  for (const id of ['tie', 'deeper', 'att-conflict']) assert.deepEqual(after.docs[id].conflicts, [], `${id} resolved`);
});

test('conflicts made with new_edits=false on kz replicate to PouchDB', async () => {
  const remote = newRemote();
  await remote.info();
  const dbp = `/${remote.name.split('/').pop()}`;
  const r = await http(server.url, 'POST', `${dbp}/_bulk_docs`, {
    new_edits: false,
    docs: [
      { _id: 'x', _rev: '2-bbbb', v: 'b', _revisions: { start: 2, ids: ['bbbb', 'aaaa'] } },
      { _id: 'x', _rev: '2-cccc', v: 'c', _revisions: { start: 2, ids: ['cccc', 'aaaa'] } },
      { _id: 'x', _rev: '3-dddd', _deleted: true, _revisions: { start: 3, ids: ['dddd', 'cccc', 'aaaa'] } },
    ],
  });
  assert.equal(r.status, 201, JSON.stringify(r.body));
  const local = localDb();
  await checkOk(await local.replicate.from(remote), 'pull');
  const snap = await assertSameDbs(remote, local, 'after pulling the tree');
  assert.equal(snap.docs.x.winner, '2-bbbb', 'the live leaf beats the deeper deleted one');
  assert.deepEqual(snap.docs.x.leaves.map((l) => l._rev), ['2-bbbb', '3-dddd']);
});

test('live: continuous sync both ways for a few seconds converges', async () => {
  const local = localDb();
  const remote = newRemote();
  await remote.info();
  const dbp = `/${remote.name.split('/').pop()}`;
  const seen = { push: 0, pull: 0 };
  let failure = null;
  const sync = local.sync(remote, { live: true, retry: true, heartbeat: 1000, batch_size: 10 });
  sync.on('change', (info) => { seen[info.direction] += info.change.docs.length; });
  sync.on('error', (e) => { failure = e; });
  sync.on('denied', (e) => { failure = e; });
  try {
    const t0 = Date.now();
    let i = 0;
    while (Date.now() - t0 < 3000) {
      await local.put({ _id: `l${i}`, at: Date.now() });
      const r = await http(server.url, 'PUT', `${dbp}/r${i}`, { at: Date.now() });
      assert.equal(r.status, 201, JSON.stringify(r.body));
      if (i % 5 === 4) {
        const x = await local.get(`r${i - 2}`).catch(() => null);
        if (x) { x.touched = 'local'; await local.put(x); }
        const y = await local.get(`l${i - 3}`);
        await local.remove(y);
      }
      i++;
      await new Promise((res) => setTimeout(res, 100));
    }
    // Converge: identical snapshots within 15 s.
    const deadline = Date.now() + 15000;
    let lastErr;
    for (;;) {
      try {
        await assertSameDbs(local, remote, 'live sync');
        const s = await snapshot(local);
        assert.equal(s.ids.length, 2 * i, 'every document on both sides');
        break;
      } catch (e) {
        lastErr = e;
        if (Date.now() > deadline) throw lastErr;
        await new Promise((res) => setTimeout(res, 250));
      }
    }
    assert.equal(failure, null, `sync error: ${failure && (failure.stack || JSON.stringify(failure))}`);
    assert.ok(seen.push > 0 && seen.pull > 0, `changes flowed both ways: ${JSON.stringify(seen)}`);
  } finally {
    sync.cancel();
    await new Promise((res) => sync.on('complete', res));
  }
});
