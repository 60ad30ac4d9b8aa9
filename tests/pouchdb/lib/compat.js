// lib/compat.js — PouchDB handles on kz's db, plain-HTTP helpers, and the one known-incompatibility shim (detected, never assumed).
'use strict';
const PouchDB = require('pouchdb');

// CouchDB answers "/db/" like "/db"; PouchDB's HTTP adapter asks for the
// database with that trailing slash (GET /db/ for info, PUT /db/ to create).
// kz's db answered 404 there when this suite was written.  When
// probeTrailingSlash() finds the server still does, the PouchDB handles made
// here drop that slash so the rest of the suite can still be run; the API
// suite keeps a todo test for the behaviour itself, and each suite prints
// which shims were on.  The shim switches itself off once kz is fixed.
const shims = { trailingSlash: false };

async function probeTrailingSlash(url) {
  const name = `probe-${process.pid}-${Date.now()}`;
  await fetch(`${url}/${name}`, { method: 'PUT' });
  const r = await fetch(`${url}/${name}/`);
  await r.arrayBuffer();
  await fetch(`${url}/${name}`, { method: 'DELETE' });
  shims.trailingSlash = r.status !== 200;
  return shims.trailingSlash;
}

function shimFetch(u, opts) {
  let url = String(u);
  if (shims.trailingSlash) {
    // Only the database path itself: http://host:port/db/ or /db/?query.
    url = url.replace(/^(https?:\/\/[^/]+\/[^/?]+)\/(\?|$)/, '$1$2');
  }
  return PouchDB.fetch(url, opts);
}

// A PouchDB handle on a database of kz's db (HTTP adapter).
function remoteDb(url, name, opts = {}) {
  return new PouchDB(`${url}/${encodeURIComponent(name)}`, { fetch: shimFetch, ...opts });
}

// Plain HTTP: method, path (under url), JSON body or Buffer; returns
// {status, headers, body (parsed JSON when JSON), raw (Buffer)}.
async function http(url, method, path, body, headers = {}) {
  const init = { method, headers: { ...headers } };
  if (body !== undefined) {
    if (Buffer.isBuffer(body) || typeof body === 'string') {
      init.body = body;
    } else {
      init.body = JSON.stringify(body);
      if (!init.headers['Content-Type']) init.headers['Content-Type'] = 'application/json';
    }
  }
  const r = await fetch(url + path, init);
  const raw = Buffer.from(await r.arrayBuffer());
  let parsed;
  const ct = r.headers.get('content-type') || '';
  if (ct.includes('json') || (raw.length && (raw[0] === 0x7b || raw[0] === 0x5b))) {
    try { parsed = JSON.parse(raw.toString('utf8')); } catch { parsed = undefined; }
  }
  return { status: r.status, headers: r.headers, body: parsed, raw };
}

function activeShims() {
  return Object.entries(shims).filter(([, on]) => on).map(([k]) => k);
}

module.exports = { PouchDB, remoteDb, http, probeTrailingSlash, activeShims, shims };
