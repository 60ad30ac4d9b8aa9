// api.test.js — kz's db seen as CouchDB by plain HTTP (fetch) and by PouchDB's HTTP adapter: databases, documents, revisions, _all_docs, _bulk_docs, _changes, attachments, conflicts.
'use strict';
const { test, describe, before, after } = require('node:test');
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

const { startKzDb } = require('./lib/kzdb');
const { remoteDb, http } = require('./lib/compat');

let server;
let n = 0;
before(async () => {
  server = await startKzDb({ changesTimeoutMs: 3000 });
});
after(async () => { if (server) await server.stop(); });

const H = (method, path, body, headers) => http(server.url, method, path, body, headers);

// A fresh database; returns its URL path ("/name").
async function mkdb(prefix = 'api') {
  const name = `${prefix}-${++n}`;
  const r = await H('PUT', `/${name}`);
  assert.equal(r.status, 201, JSON.stringify(r.body));
  return `/${name}`;
}
async function putDoc(db, id, body) {
  const r = await H('PUT', `${db}/${encodeURIComponent(id)}`, body);
  assert.equal(r.status, 201, `PUT ${id}: ${r.status} ${JSON.stringify(r.body)}`);
  return r.body.rev;
}
const md5 = (b) => `md5-${crypto.createHash('md5').update(b).digest('base64')}`;
const gen = (rev) => Number(rev.split('-')[0]);

describe('server and databases', () => {
  test('GET / is the CouchDB welcome', async () => {
    const r = await H('GET', '/');
    assert.equal(r.status, 200);
    assert.equal(r.body.couchdb, 'Welcome');
    assert.match(r.body.version, /^\d+\.\d+/);
  });

  test('PUT /db creates, a second PUT is 412, GET /db is its info, DELETE removes it', async () => {
    let r = await H('PUT', '/life');
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, { ok: true });
    r = await H('PUT', '/life');
    assert.equal(r.status, 412);
    assert.equal(r.body.error, 'file_exists');
    await putDoc('/life', 'a', { x: 1 });
    r = await H('GET', '/life');
    assert.equal(r.status, 200);
    assert.equal(r.body.db_name, 'life');
    assert.equal(r.body.doc_count, 1);
    assert.equal(r.body.doc_del_count, 0);
    assert.ok(r.body.update_seq !== undefined);
    r = await H('GET', '/_all_dbs');
    assert.ok(r.body.includes('life'));
    r = await H('DELETE', '/life');
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { ok: true });
    r = await H('GET', '/life');
    assert.equal(r.status, 404);
    assert.equal(r.body.error, 'not_found');
    r = await H('DELETE', '/life');
    assert.equal(r.status, 404);
    r = await H('GET', '/life/a');
    assert.equal(r.status, 404, 'documents go with their database');
  });

  test('illegal database names are 400 illegal_database_name', async () => {
    for (const bad of ['Upper', '1digit', 'sp%20ace']) {
      const r = await H('PUT', `/${bad}`);
      assert.equal(r.status, 400, bad);
      assert.equal(r.body.error, 'illegal_database_name');
    }
    const r = await H('PUT', '/account%2Fab%2Fcd%2Fef');
    assert.equal(r.status, 201, 'Kazoo account names with / are legal');
  });

  test('/db/ (trailing slash, as PouchDB asks) is /db: PUT creates, GET is the info, DELETE removes', async () => {
    const db = await mkdb();
    let r = await H('GET', `${db}/`);
    assert.equal(r.status, 200);
    assert.equal(r.body.db_name, db.slice(1));
    r = await H('PUT', '/slash/');
    assert.equal(r.status, 201, JSON.stringify(r.body));
    r = await H('PUT', '/slash/');
    assert.equal(r.status, 412);
    r = await H('DELETE', '/slash/');
    assert.equal(r.status, 200, JSON.stringify(r.body));
    assert.equal((await H('GET', '/slash')).status, 404);
  });

  test('PouchDB: info() and destroy() of a remote database', async () => {
    const p = remoteDb(server.url, 'pouch-life');
    const info = await p.info();
    assert.equal(info.db_name, 'pouch-life');
    assert.equal(info.doc_count, 0);
    await p.destroy();
    assert.equal((await H('GET', '/pouch-life')).status, 404);
  });
});

describe('documents and revisions', () => {
  test('put, get, update with rev, 409 on a missing or stale rev, delete, recreate', async () => {
    const db = await mkdb();
    let r = await H('PUT', `${db}/doc`, { a: 1 });
    assert.equal(r.status, 201);
    assert.equal(r.body.ok, true);
    assert.equal(r.body.id, 'doc');
    assert.match(r.body.rev, /^1-[0-9a-f]{32}$/);
    const rev1 = r.body.rev;
    r = await H('GET', `${db}/doc`);
    assert.deepEqual(r.body, { _id: 'doc', _rev: rev1, a: 1 });
    assert.equal(r.headers.get('etag'), `"${rev1}"`);

    r = await H('PUT', `${db}/doc`, { a: 2 });
    assert.equal(r.status, 409);
    assert.equal(r.body.error, 'conflict');
    r = await H('PUT', `${db}/doc`, { _rev: '1-00000000000000000000000000000000', a: 2 });
    assert.equal(r.status, 409);

    r = await H('PUT', `${db}/doc`, { _rev: rev1, a: 2 });
    assert.equal(r.status, 201);
    const rev2 = r.body.rev;
    assert.equal(gen(rev2), 2);
    r = await H('PUT', `${db}/doc?rev=${rev1}`, { a: 3 });
    assert.equal(r.status, 409, 'the old rev in the query is stale too');
    r = await H('PUT', `${db}/doc?rev=${rev2}`, { a: 3 });
    assert.equal(r.status, 201, 'rev in the query string');
    const rev3 = r.body.rev;

    r = await H('GET', `${db}/doc?rev=${rev1}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.a, 1, 'an old revision stays readable until compaction');
    r = await H('GET', `${db}/doc?revs=true`);
    assert.deepEqual(r.body._revisions, { start: 3, ids: [rev3, rev2, rev1].map((x) => x.split('-')[1]) });
    r = await H('GET', `${db}/doc?revs_info=true`);
    assert.deepEqual(r.body._revs_info.map((x) => x.rev), [rev3, rev2, rev1]);
    assert.equal(r.body._revs_info[0].status, 'available');

    r = await H('DELETE', `${db}/doc?rev=${rev2}`);
    assert.equal(r.status, 409);
    r = await H('DELETE', `${db}/doc?rev=${rev3}`);
    assert.equal(r.status, 200);
    assert.equal(r.body.ok, true);
    const rev4 = r.body.rev;
    assert.equal(gen(rev4), 4);
    r = await H('GET', `${db}/doc`);
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: 'not_found', reason: 'deleted' });
    r = await H('GET', `${db}/doc?rev=${rev4}`);
    assert.equal(r.status, 200);
    assert.equal(r.body._deleted, true);
    r = await H('GET', `${db}/nope`);
    assert.equal(r.status, 404);
    assert.deepEqual(r.body, { error: 'not_found', reason: 'missing' });

    r = await H('PUT', `${db}/doc`, { again: true });
    assert.equal(r.status, 201, 'a deleted document can be recreated without a rev');
    assert.equal(gen(r.body.rev), 5, 'the new revision extends the deleted branch');
    r = await H('GET', `${db}`);
    assert.equal(r.body.doc_count, 1);
  });

  test('POST /db makes an id; HEAD gives the ETag; _id mismatches and bad JSON are 400', async () => {
    const db = await mkdb();
    let r = await H('POST', db, { made: true });
    assert.equal(r.status, 201);
    assert.match(r.body.id, /^[0-9a-f]{32}$/);
    const rr = await fetch(`${server.url}${db}/${r.body.id}`, { method: 'HEAD' });
    assert.equal(rr.status, 200);
    assert.equal(rr.headers.get('etag'), `"${r.body.rev}"`);
    r = await H('POST', db, { _id: 'chosen', x: 1 });
    assert.equal(r.status, 201);
    assert.equal(r.body.id, 'chosen');
    r = await H('PUT', `${db}/bad`, '{"x":', { 'Content-Type': 'application/json' });
    assert.equal(r.status, 400);
    assert.equal(r.body.error, 'bad_request');
    r = await H('PUT', `${db}/_bogus`, { x: 1 });
    assert.equal(r.status, 400);
    r = await H('GET', `${db}/_uuids_no`);
    assert.equal(r.status, 400);
  });

  test('strings with escapes and non-ASCII text round-trip exactly', async () => {
    const db = await mkdb();
    const body = { s: 'é✓ \u{1F4DE} "q" \\ \n\t\u0001', n: 1.5, big: 9007199254740991, neg: -3, nested: { a: [null, true, false, {}] } };
    await putDoc(db, 'esc', body);
    const r = await H('GET', `${db}/esc`);
    const { _id, _rev, ...got } = r.body;
    assert.deepEqual(got, body);
  });

  test('a string holding U+0000 is stored (CouchDB accepts it)', async () => {
    const db = await mkdb();
    const r = await H('PUT', `${db}/nul`, { s: 'a\u0000b' });
    assert.equal(r.status, 201, JSON.stringify(r.body));
    assert.equal((await H('GET', `${db}/nul`)).body.s, 'a\u0000b');
  });

  test('document ids with slashes, spaces and unicode; _design and _local ids', async () => {
    const db = await mkdb();
    for (const id of ['a/b', 'sp ace', 'ünï', 'q?x&y=1#h']) {
      await putDoc(db, id, { id });
      const r = await H('GET', `${db}/${encodeURIComponent(id)}`);
      assert.equal(r.status, 200, id);
      assert.equal(r.body._id, id);
    }
    let r = await H('PUT', `${db}/_design/app`, { views: {} });
    assert.equal(r.status, 201);
    assert.equal(r.body.id, '_design/app');
    r = await H('GET', `${db}/_design%2Fapp`);
    assert.equal(r.status, 200);
    assert.equal(r.body._id, '_design/app');
    r = await H('PUT', `${db}/_local/ckpt`, { seq: 5 });
    assert.equal(r.status, 201);
    r = await H('GET', `${db}/_local/ckpt`);
    assert.equal(r.body.seq, 5);
    assert.equal(r.body._id, '_local/ckpt');
    r = await H('GET', `${db}/_all_docs`);
    assert.ok(!r.body.rows.some((x) => x.id.startsWith('_local/')), '_local docs are not listed');
    r = await H('GET', `${db}/_changes`);
    assert.ok(!r.body.results.some((x) => x.id.startsWith('_local/')), '_local docs are not in _changes');
  });

  test('PouchDB: put/get/remove, 409 conflicts, revs, get(rev), post', async () => {
    const p = remoteDb(server.url, `pouch-docs-${++n}`);
    const r1 = await p.put({ _id: 'x', v: 1 });
    assert.equal(r1.ok, true);
    await assert.rejects(p.put({ _id: 'x', v: 2 }), (e) => e.status === 409 && e.name === 'conflict');
    const r2 = await p.put({ _id: 'x', _rev: r1.rev, v: 2 });
    const doc = await p.get('x', { revs: true });
    assert.equal(doc.v, 2);
    assert.equal(doc._revisions.ids.length, 2);
    assert.equal((await p.get('x', { rev: r1.rev })).v, 1);
    const r3 = await p.remove('x', r2.rev);
    assert.equal(gen(r3.rev), 3);
    await assert.rejects(p.get('x'), (e) => e.status === 404 && e.reason === 'deleted');
    const posted = await p.post({ free: true });
    assert.equal((await p.get(posted.id)).free, true);
    await p.destroy();
  });
});

describe('_all_docs', () => {
  let db;
  const ids = ['a', 'b', 'c', 'd', 'e', 'f', 'g', 'h'];
  before(async () => {
    db = await mkdb('alldocs');
    for (const id of ids) await putDoc(db, id, { v: id });
    const r = await H('GET', `${db}/h`);
    await H('DELETE', `${db}/h?rev=${r.body._rev}`);
  });

  test('every live document in id order with its rev, total_rows and offset', async () => {
    const r = await H('GET', `${db}/_all_docs`);
    assert.equal(r.status, 200);
    assert.equal(r.body.total_rows, 7);
    assert.equal(r.body.offset, 0);
    assert.deepEqual(r.body.rows.map((x) => x.id), ids.slice(0, 7));
    for (const row of r.body.rows) {
      assert.equal(row.key, row.id);
      assert.match(row.value.rev, /^1-/);
    }
  });

  test('startkey/endkey (JSON), inclusive_end=false, start_key/end_key aliases', async () => {
    let r = await H('GET', `${db}/_all_docs?startkey=${encodeURIComponent('"b"')}&endkey=${encodeURIComponent('"d"')}`);
    assert.deepEqual(r.body.rows.map((x) => x.id), ['b', 'c', 'd']);
    r = await H('GET', `${db}/_all_docs?startkey="b"&endkey="d"&inclusive_end=false`);
    assert.deepEqual(r.body.rows.map((x) => x.id), ['b', 'c']);
    r = await H('GET', `${db}/_all_docs?start_key="e"&end_key="zzz"`);
    assert.deepEqual(r.body.rows.map((x) => x.id), ['e', 'f', 'g']);
    r = await H('GET', `${db}/_all_docs?startkey="b"&limit=2`);
    assert.equal(r.body.offset, 1);
  });

  test('descending, limit and skip', async () => {
    let r = await H('GET', `${db}/_all_docs?descending=true`);
    assert.deepEqual(r.body.rows.map((x) => x.id), ['g', 'f', 'e', 'd', 'c', 'b', 'a']);
    r = await H('GET', `${db}/_all_docs?descending=true&startkey="e"&endkey="c"`);
    assert.deepEqual(r.body.rows.map((x) => x.id), ['e', 'd', 'c']);
    r = await H('GET', `${db}/_all_docs?limit=2&skip=3`);
    assert.deepEqual(r.body.rows.map((x) => x.id), ['d', 'e']);
    r = await H('GET', `${db}/_all_docs?limit=0`);
    assert.deepEqual(r.body.rows, []);
    assert.equal(r.body.total_rows, 7);
    r = await H('GET', `${db}/_all_docs?limit=-1`);
    assert.equal(r.status, 400);
  });

  test('include_docs', async () => {
    const r = await H('GET', `${db}/_all_docs?include_docs=true&limit=2`);
    assert.deepEqual(r.body.rows.map((x) => x.doc.v), ['a', 'b']);
    assert.equal(r.body.rows[0].doc._rev, r.body.rows[0].value.rev);
  });

  test('keys (GET ?keys= and POST {keys}): order kept, missing and deleted keys', async () => {
    const keys = ['c', 'zz', 'a', 'h'];
    const g = await H('GET', `${db}/_all_docs?keys=${encodeURIComponent(JSON.stringify(keys))}&include_docs=true`);
    const p = await H('POST', `${db}/_all_docs?include_docs=true`, { keys });
    for (const r of [g, p]) {
      assert.equal(r.status, 200);
      const rows = r.body.rows;
      assert.deepEqual(rows.map((x) => x.key), keys);
      assert.equal(rows[0].doc.v, 'c');
      assert.deepEqual(rows[1], { key: 'zz', error: 'not_found' });
      assert.equal(rows[3].value.deleted, true);
      assert.equal(rows[3].doc, null);
      assert.match(rows[3].value.rev, /^2-/);
    }
  });

  test('PouchDB allDocs with the same options', async () => {
    const p = remoteDb(server.url, db.slice(1));
    let r = await p.allDocs({ startkey: 'b', endkey: 'e', inclusive_end: false, include_docs: true });
    assert.deepEqual(r.rows.map((x) => x.doc.v), ['b', 'c', 'd']);
    r = await p.allDocs({ descending: true, limit: 2, skip: 1 });
    assert.deepEqual(r.rows.map((x) => x.id), ['f', 'e']);
    r = await p.allDocs({ keys: ['g', 'nope'] });
    assert.equal(r.rows[0].id, 'g');
    assert.equal(r.rows[1].error, 'not_found');
    r = await p.allDocs({ key: 'd' });
    assert.deepEqual(r.rows.map((x) => x.id), ['d']);
  });
});

describe('_bulk_docs and _revs_diff', () => {
  test('new documents, updates, deletions and per-document conflicts', async () => {
    const db = await mkdb();
    let r = await H('POST', `${db}/_bulk_docs`, { docs: [{ _id: 'a', v: 1 }, { _id: 'b', v: 1 }, { v: 'auto' }] });
    assert.equal(r.status, 201);
    assert.equal(r.body.length, 3);
    for (const x of r.body) assert.equal(x.ok, true);
    const [ra, rb] = r.body;
    r = await H('POST', `${db}/_bulk_docs`, {
      docs: [{ _id: 'a', _rev: ra.rev, v: 2 }, { _id: 'b', v: 'no rev' }, { _id: 'b', _rev: rb.rev, _deleted: true }],
    });
    assert.equal(r.status, 201);
    assert.equal(r.body[0].ok, true);
    assert.equal(r.body[1].error, 'conflict');
    assert.equal(r.body[1].id, 'b');
    assert.equal(r.body[2].ok, true);
    assert.equal((await H('GET', `${db}/b`)).status, 404);
    r = await H('POST', `${db}/_bulk_docs`, { nodocs: [] });
    assert.equal(r.status, 400);
  });

  test('new_edits=false stores the given revisions and histories as they are', async () => {
    const db = await mkdb();
    let r = await H('POST', `${db}/_bulk_docs`, {
      new_edits: false,
      docs: [
        { _id: 'r', _rev: '3-cccc', v: 3, _revisions: { start: 3, ids: ['cccc', 'bbbb', 'aaaa'] } },
        { _id: 's', _rev: '1-ffff', v: 1 },
      ],
    });
    assert.equal(r.status, 201);
    assert.deepEqual(r.body, []);
    r = await H('GET', `${db}/r?revs=true`);
    assert.equal(r.body._rev, '3-cccc');
    assert.deepEqual(r.body._revisions, { start: 3, ids: ['cccc', 'bbbb', 'aaaa'] });
    // The same revision again is a no-op; an older one is a branch.
    r = await H('POST', `${db}/_bulk_docs`, { new_edits: false, docs: [{ _id: 'r', _rev: '3-cccc', v: 3 }] });
    assert.equal(r.status, 201);
    r = await H('GET', `${db}/s`);
    assert.equal(r.body._rev, '1-ffff');
    r = await H('POST', `${db}/_revs_diff`, { r: ['3-cccc', '4-dddd', '2-bbbb'], zz: ['1-aaaa'] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body, { r: { missing: ['4-dddd'], possible_ancestors: ['3-cccc'] }, zz: { missing: ['1-aaaa'] } });
  });

  test('PouchDB bulkDocs, and new_edits=false through bulkDocs', async () => {
    const p = remoteDb(server.url, `pouch-bulk-${++n}`);
    const res = await p.bulkDocs(Array.from({ length: 50 }, (_, i) => ({ _id: `k${i}`, i })));
    assert.equal(res.filter((x) => x.ok).length, 50);
    await p.bulkDocs([{ _id: 'k1', _rev: '9-abc', i: 'branch' }], { new_edits: false });
    const d = await p.get('k1', { conflicts: true });
    assert.equal(d._rev, '9-abc');
    assert.equal(d._conflicts.length, 1);
    assert.equal((await p.info()).doc_count, 50);
    await p.destroy();
  });
});

describe('_changes', () => {
  test('since, limit, include_docs, deletions, style=all_docs, last_seq', async () => {
    const db = await mkdb();
    const revs = {};
    for (const id of ['a', 'b', 'c', 'd']) revs[id] = await putDoc(db, id, { id });
    await H('DELETE', `${db}/b?rev=${revs.b}`);
    const u = await H('PUT', `${db}/a`, { _rev: revs.a, id: 'a', v: 2 });
    assert.equal(u.status, 201);
    let r = await H('GET', `${db}/_changes`);
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.results.map((x) => x.id), ['c', 'd', 'b', 'a'], 'each document once, at its last change');
    const b = r.body.results.find((x) => x.id === 'b');
    assert.equal(b.deleted, true);
    assert.equal(r.body.results[3].changes[0].rev, u.body.rev);
    const last = r.body.last_seq;
    assert.deepEqual(r.body.results[3].seq, last);

    r = await H('GET', `${db}/_changes?limit=2`);
    assert.deepEqual(r.body.results.map((x) => x.id), ['c', 'd']);
    r = await H('GET', `${db}/_changes?since=${encodeURIComponent(JSON.stringify(r.body.last_seq))}`);
    assert.deepEqual(r.body.results.map((x) => x.id), ['b', 'a']);
    r = await H('GET', `${db}/_changes?since=${encodeURIComponent(JSON.stringify(last))}`);
    assert.deepEqual(r.body.results, []);
    assert.deepEqual(r.body.last_seq, last);
    r = await H('GET', `${db}/_changes?include_docs=true&since=0`);
    assert.equal(r.body.results.find((x) => x.id === 'a').doc.v, 2);
    assert.equal(r.body.results.find((x) => x.id === 'b').doc._deleted, true);
    r = await H('GET', `${db}/_changes?since=now`);
    assert.deepEqual(r.body.results, []);
    assert.deepEqual(r.body.last_seq, last);
  });

  test('style=all_docs lists every leaf of a conflicted document', async () => {
    const db = await mkdb();
    await H('POST', `${db}/_bulk_docs`, { new_edits: false, docs: [{ _id: 'x', _rev: '1-aaaa' }, { _id: 'x', _rev: '1-bbbb' }] });
    let r = await H('GET', `${db}/_changes?style=all_docs`);
    assert.deepEqual(r.body.results[0].changes.map((c) => c.rev).sort(), ['1-aaaa', '1-bbbb']);
    r = await H('GET', `${db}/_changes`);
    assert.deepEqual(r.body.results[0].changes, [{ rev: '1-bbbb' }]);
  });

  test('longpoll waits for the next change, and times out empty', async () => {
    const db = await mkdb();
    await putDoc(db, 'first', {});
    const since = (await H('GET', `${db}/_changes`)).body.last_seq;
    const t0 = Date.now();
    const waiting = H('GET', `${db}/_changes?feed=longpoll&since=${encodeURIComponent(JSON.stringify(since))}&include_docs=true`);
    await new Promise((res) => setTimeout(res, 300));
    await putDoc(db, 'second', { late: true });
    const r = await waiting;
    assert.equal(r.status, 200);
    assert.ok(Date.now() - t0 >= 250, 'it waited for the write');
    assert.deepEqual(r.body.results.map((x) => x.id), ['second']);
    assert.equal(r.body.results[0].doc.late, true);

    const t1 = Date.now();
    const e = await H('GET', `${db}/_changes?feed=longpoll&since=now&timeout=400`);
    assert.equal(e.status, 200);
    assert.deepEqual(e.body.results, []);
    const took = Date.now() - t1;
    assert.ok(took >= 350 && took < 3000, `timeout honoured (${took} ms)`);
  });

  test('filter=_doc_ids (POST, as PouchDB sends doc_ids)', async () => {
    const db = await mkdb();
    for (const id of ['a', 'b', 'c']) await putDoc(db, id, {});
    const r = await H('POST', `${db}/_changes?filter=_doc_ids`, { doc_ids: ['c', 'a'] });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.results.map((x) => x.id).sort(), ['a', 'c']);
    const p = remoteDb(server.url, db.slice(1));
    const ch = await p.changes({ doc_ids: ['b'] });
    assert.deepEqual(ch.results.map((x) => x.id), ['b']);
  });

  test('PouchDB changes(): since, limit, include_docs, live', async () => {
    const p = remoteDb(server.url, `pouch-changes-${++n}`);
    await p.bulkDocs([{ _id: 'a' }, { _id: 'b' }, { _id: 'c' }]);
    let ch = await p.changes({ limit: 2, include_docs: true });
    assert.deepEqual(ch.results.map((x) => x.id), ['a', 'b']);
    assert.equal(ch.results[0].doc._id, 'a');
    ch = await p.changes({ since: ch.last_seq });
    assert.deepEqual(ch.results.map((x) => x.id), ['c']);
    const seen = [];
    const live = p.changes({ live: true, since: 'now' }).on('change', (c) => seen.push(c.id));
    await new Promise((res) => setTimeout(res, 200));
    await p.put({ _id: 'd' });
    await p.put({ _id: 'e' });
    const deadline = Date.now() + 5000;
    while (seen.length < 2 && Date.now() < deadline) await new Promise((res) => setTimeout(res, 50));
    live.cancel();
    assert.deepEqual(seen, ['d', 'e']);
    await p.destroy();
  });
});

describe('attachments', () => {
  const bin = Buffer.from(Array.from({ length: 1000 }, (_, i) => (i * 37) & 0xff));

  test('PUT /db/doc/att, GET the bytes, stubs in the document, attachments=true inline', async () => {
    const db = await mkdb();
    let r = await H('PUT', `${db}/m/prompt.wav`, bin, { 'Content-Type': 'audio/wav' });
    assert.equal(r.status, 201);
    const rev1 = r.body.rev;
    assert.equal(r.body.id, 'm');
    r = await H('GET', `${db}/m/prompt.wav`);
    assert.equal(r.status, 200);
    assert.ok(r.raw.equals(bin));
    assert.equal(r.headers.get('content-type'), 'audio/wav');
    r = await H('GET', `${db}/m`);
    const stub = r.body._attachments['prompt.wav'];
    assert.deepEqual(stub, { content_type: 'audio/wav', revpos: 1, digest: md5(bin), length: bin.length, stub: true });
    r = await H('GET', `${db}/m?attachments=true`, undefined, { Accept: 'application/json' });
    assert.equal(r.body._attachments['prompt.wav'].data, bin.toString('base64'));
    assert.equal(r.body._attachments['prompt.wav'].stub, undefined);

    // A second attachment keeps the first; an update with the stub keeps it too.
    r = await H('PUT', `${db}/m/second.txt?rev=${rev1}`, 'hello', { 'Content-Type': 'text/plain' });
    assert.equal(r.status, 201);
    r = await H('PUT', `${db}/m/third.txt?rev=${rev1}`, 'stale', { 'Content-Type': 'text/plain' });
    assert.equal(r.status, 409);
    const doc = (await H('GET', `${db}/m`)).body;
    doc.edited = true;
    r = await H('PUT', `${db}/m`, doc);
    assert.equal(r.status, 201);
    r = await H('GET', `${db}/m`);
    assert.deepEqual(Object.keys(r.body._attachments).sort(), ['prompt.wav', 'second.txt']);
    assert.equal(r.body._attachments['second.txt'].revpos, 2);
    assert.ok((await H('GET', `${db}/m/prompt.wav`)).raw.equals(bin));
    // atts_since style: an old revision's attachment is still readable.
    r = await H('GET', `${db}/m/prompt.wav?rev=${rev1}`);
    assert.equal(r.status, 200);

    r = await H('DELETE', `${db}/m/second.txt?rev=${(await H('GET', `${db}/m`)).body._rev}`);
    assert.equal(r.status, 200);
    r = await H('GET', `${db}/m/second.txt`);
    assert.equal(r.status, 404);
    r = await H('GET', `${db}/m/never.bin`);
    assert.equal(r.status, 404);
  });

  test('inline base64 attachments in a document body and in _bulk_docs', async () => {
    const db = await mkdb();
    await putDoc(db, 'i', { _attachments: { 'x.bin': { content_type: 'application/octet-stream', data: bin.toString('base64') } } });
    let r = await H('GET', `${db}/i/x.bin`);
    assert.ok(r.raw.equals(bin));
    r = await H('POST', `${db}/_bulk_docs`, { docs: [{ _id: 'j', _attachments: { 'y.txt': { content_type: 'text/plain', data: Buffer.from('yy').toString('base64') } } }] });
    assert.equal(r.status, 201);
    r = await H('GET', `${db}/j/y.txt`);
    assert.equal(r.raw.toString(), 'yy');
    r = await H('PUT', `${db}/bad`, { _attachments: { 'z': { content_type: 'text/plain', data: '!!not base64!!' } } });
    assert.equal(r.status, 400);
  });

  test('PouchDB putAttachment/getAttachment/removeAttachment with binary data', async () => {
    const p = remoteDb(server.url, `pouch-att-${++n}`);
    const r1 = await p.putAttachment('doc', 'a.bin', bin, 'application/octet-stream');
    const got = await p.getAttachment('doc', 'a.bin');
    assert.ok(Buffer.from(got).equals(bin));
    const d = await p.get('doc', { attachments: true, binary: true });
    assert.ok(d._attachments['a.bin'].data.equals(bin));
    assert.equal(d._attachments['a.bin'].digest, md5(bin));
    const r2 = await p.removeAttachment('doc', 'a.bin', r1.rev);
    const after = await p.get('doc');
    assert.equal(after._rev, r2.rev);
    assert.equal(after._attachments, undefined);
    await p.destroy();
  });
});

describe('conflicts', () => {
  async function branched() {
    const db = await mkdb('conf');
    const r = await H('POST', `${db}/_bulk_docs`, {
      new_edits: false,
      docs: [
        { _id: 'c', _rev: '1-aaaa', v: 'root' },
        { _id: 'c', _rev: '2-bbbb', v: 'left', _revisions: { start: 2, ids: ['bbbb', 'aaaa'] } },
        { _id: 'c', _rev: '2-cccc', v: 'right', _revisions: { start: 2, ids: ['cccc', 'aaaa'] } },
        { _id: 'c', _rev: '3-0000', _deleted: true, _revisions: { start: 3, ids: ['0000', 'bbbb', 'aaaa'] } },
      ],
    });
    assert.equal(r.status, 201);
    return db;
  }

  test('the winner, _conflicts and _deleted_conflicts', async () => {
    const db = await branched();
    let r = await H('GET', `${db}/c?conflicts=true&deleted_conflicts=true`);
    assert.equal(r.body._rev, '2-cccc', 'a live leaf beats a deeper deleted one');
    assert.equal(r.body.v, 'right');
    assert.equal(r.body._conflicts, undefined, 'the only other leaf is deleted');
    assert.deepEqual(r.body._deleted_conflicts, ['3-0000']);
    // A second live branch becomes a conflict.
    await H('POST', `${db}/_bulk_docs`, { new_edits: false, docs: [{ _id: 'c', _rev: '2-dddd', v: 'third', _revisions: { start: 2, ids: ['dddd', 'aaaa'] } }] });
    r = await H('GET', `${db}/c?conflicts=true`);
    assert.equal(r.body._rev, '2-dddd', 'the highest hash wins a tie');
    assert.deepEqual(r.body._conflicts, ['2-cccc']);
    r = await H('GET', `${db}/_all_docs?conflicts=true&include_docs=true`);
    assert.deepEqual(r.body.rows[0].doc._conflicts, ['2-cccc']);
  });

  test('open_revs=all and open_revs=[...] as JSON', async () => {
    const db = await branched();
    let r = await H('GET', `${db}/c?open_revs=all`, undefined, { Accept: 'application/json' });
    assert.equal(r.status, 200);
    assert.deepEqual(r.body.map((x) => x.ok._rev).sort(), ['2-cccc', '3-0000']);
    r = await H('GET', `${db}/c?open_revs=${encodeURIComponent('["2-bbbb","9-zzzz"]')}&revs=true`, undefined, { Accept: 'application/json' });
    assert.equal(r.body[0].ok._rev, '2-bbbb');
    assert.deepEqual(r.body[0].ok._revisions, { start: 2, ids: ['bbbb', 'aaaa'] });
    assert.deepEqual(r.body[1], { missing: '9-zzzz' });
  });

  test('deleting the losing leaf resolves the conflict; PouchDB sees the same', async () => {
    const db = await branched();
    await H('POST', `${db}/_bulk_docs`, { new_edits: false, docs: [{ _id: 'c', _rev: '2-dddd', v: 'third', _revisions: { start: 2, ids: ['dddd', 'aaaa'] } }] });
    const p = remoteDb(server.url, db.slice(1));
    let d = await p.get('c', { conflicts: true });
    assert.deepEqual(d._conflicts, ['2-cccc']);
    await p.remove('c', '2-cccc');
    d = await p.get('c', { conflicts: true });
    assert.equal(d._rev, '2-dddd');
    assert.equal(d._conflicts, undefined);
    const r = await H('PUT', `${db}/c`, { _rev: '2-cccc', v: 'edit a deleted leaf' });
    assert.equal(r.status, 409);
  });
});
