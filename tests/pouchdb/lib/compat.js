// lib/compat.js — PouchDB handles on kz's db and plain-HTTP helpers (no compatibility shims: PouchDB talks to kz unmodified).
'use strict';
const PouchDB = require('pouchdb');

// A PouchDB handle on a database of kz's db (HTTP adapter).
function remoteDb(url, name, opts = {}) {
  return new PouchDB(`${url}/${encodeURIComponent(name)}`, opts);
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

module.exports = { PouchDB, remoteDb, http };
