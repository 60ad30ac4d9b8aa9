// lib/compare.js — snapshots a database through PouchDB's API (local adapter or HTTP) and compares two: ids, leaves, histories, winners, conflicts, attachments.
'use strict';
const assert = require('node:assert/strict');
const crypto = require('node:crypto');

function sha256(buf) {
  return crypto.createHash('sha256').update(buf).digest('hex');
}

// Every document the database knows (deleted ones too), from the changes
// feed: id -> sorted leaf revisions.
async function leafRevs(db) {
  const ch = await db.changes({ since: 0, style: 'all_docs' });
  const out = new Map();
  for (const r of ch.results) out.set(r.id, r.changes.map((c) => c.rev).sort());
  return out;
}

// One leaf, made comparable: its revision, deletion, full _revisions
// history, body and each attachment's metadata and the sha256 of its bytes.
function normLeaf(doc) {
  const { _id, _rev, _deleted, _revisions, _attachments, ...body } = doc;
  const atts = {};
  for (const [name, a] of Object.entries(_attachments || {})) {
    const data = a.data === undefined ? null : Buffer.isBuffer(a.data) ? a.data : Buffer.from(a.data, 'base64');
    atts[name] = {
      content_type: a.content_type,
      digest: a.digest,
      length: data ? data.length : a.length,
      sha256: data ? sha256(data) : null,
    };
  }
  return { _rev, _deleted: !!_deleted, _revisions, body, atts };
}

// A whole database as a plain object: {ids, allDocs, docs: {id: {winner,
// deleted, conflicts, leaves}}}.  `leaves` come from open_revs=all with
// revs and attachments, so the rev tree's leaves, their histories and the
// attachment bytes all take part in the comparison.
async function snapshot(db) {
  const leaves = await leafRevs(db);
  const ids = [...leaves.keys()].sort();
  const all = await db.allDocs();
  const byKeys = ids.length ? await db.allDocs({ keys: ids }) : { rows: [] };
  const docs = {};
  for (const row of byKeys.rows) {
    const id = row.key;
    const entry = { winner: row.value.rev, deleted: !!row.value.deleted, conflicts: [], leaves: [] };
    if (!entry.deleted) {
      const d = await db.get(id, { conflicts: true });
      entry.conflicts = (d._conflicts || []).slice().sort();
      assert.equal(d._rev, entry.winner, `${id}: get() and all_docs disagree on the winner`);
    }
    const open = await db.get(id, { open_revs: 'all', revs: true, attachments: true, binary: true });
    for (const o of open) {
      assert.ok(o.ok, `${id}: open_revs=all returned a missing leaf ${JSON.stringify(o)}`);
      entry.leaves.push(normLeaf(o.ok));
    }
    entry.leaves.sort((a, b) => (a._rev < b._rev ? -1 : a._rev > b._rev ? 1 : 0));
    assert.deepEqual(entry.leaves.map((l) => l._rev), leaves.get(id), `${id}: open_revs and _changes leaves differ`);
    docs[id] = entry;
  }
  return {
    ids,
    allDocs: all.rows.map((r) => ({ id: r.id, rev: r.value.rev })),
    docCount: all.total_rows,
    docs,
  };
}

async function assertSameDbs(a, b, what) {
  const [sa, sb] = await Promise.all([snapshot(a), snapshot(b)]);
  assert.deepEqual(sb.ids, sa.ids, `${what}: the document ids differ`);
  assert.deepEqual(sb.allDocs, sa.allDocs, `${what}: _all_docs (ids, revs) differ`);
  assert.equal(sb.docCount, sa.docCount, `${what}: doc counts differ`);
  for (const id of sa.ids) assert.deepEqual(sb.docs[id], sa.docs[id], `${what}: document ${id} differs`);
  return sa;
}

module.exports = { snapshot, assertSameDbs, sha256, normLeaf };
