// bench.js — the db benchmark in one run: kz's db vs pouchdb-server over the same HTTP requests (one C libcurl keep-alive client), and raw SQLite inserts; writes reports/bench/db.json and db.md.
'use strict';
const { spawn, execFileSync } = require('node:child_process');
const fs = require('node:fs');
const net = require('node:net');
const os = require('node:os');
const path = require('node:path');

const root = path.resolve(__dirname, '../..');
const args = process.argv.slice(2);
const opt = (name, def) => {
  const i = args.indexOf(name);
  return i >= 0 ? args[i + 1] : def;
};
const quick = args.includes('--quick');
const build = path.resolve(root, opt('--build', 'build/release'));
const outDir = path.resolve(root, opt('--out', 'reports/bench'));
const bins = {
  kz: path.join(build, 'impl/cli/kz'),
  client: path.join(build, 'bench/db/kz_bench_db_client'),
  sqlite: path.join(build, 'bench/db/kz_bench_db_sqlite'),
  pouchdbServer: path.join(__dirname, 'node_modules/pouchdb-server/bin/pouchdb-server'),
};
// Bounded by count and by time (seconds per phase).  50 bulk requests:
// with 10, raw SQLite's phase lasted under 30 ms and whether a WAL
// checkpoint fell inside it swung its figure by 40% from run to run.
const N = quick
  ? { single: 300, bulkReqs: 3, batch: 1000, bulkRuns: 1, reads: 1000, queries: 500, secs: 10 }
  : { single: 2000, bulkReqs: 50, batch: 1000, bulkRuns: 3, reads: 5000, queries: 2000, secs: 20 };
// The bulk figure is the median of bulkRuns runs, for each server (the
// first into the database the other phases use, the others into fresh
// ones) and for raw SQLite (a fresh file each): fsync latency on a
// shared machine moves a single run by a fifth either way.

// Kazoo's devices/sip_credentials map (the device branch of
// kazoo_apps/priv/couchdb/account/devices.json), for pouchdb-server; kz
// runs its native C port of the same function.
const sipCredentialsMap = `function (doc) {
  if (doc.pvt_deleted) return;
  if (doc.sip) {
    var sip = JSON.parse(JSON.stringify(doc.sip));
    sip.authorizing_id = doc._id;
    sip.authorizing_type = doc.device_type == 'mobile' ? 'mobile' : doc.pvt_type;
    emit(sip.username.toLowerCase(), sip);
  }
}`;

function log(s) { process.stderr.write(`bench/db: ${s}\n`); }

function ensureNpm() {
  if (fs.existsSync(path.join(__dirname, 'node_modules/pouchdb-server'))) return;
  log('npm ci (pouchdb-server)');
  execFileSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: __dirname, stdio: 'inherit' });
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.listen(0, '127.0.0.1', () => { const p = s.address().port; s.close(() => resolve(p)); });
    s.on('error', reject);
  });
}

async function waitUp(url, child, what) {
  const deadline = Date.now() + 60000;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`${what} exited with ${child.exitCode}`);
    try { if ((await fetch(url)).ok) return; } catch { /* not yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not answer ${url} in 60 s`);
}

async function startKz(tmp) {
  const cfg = path.join(tmp, 'kz.json');
  fs.writeFileSync(cfg, JSON.stringify({ listen: '127.0.0.1:0', data_dir: path.join(tmp, 'kz'), seed: 1, log_level: 'warn' }));
  const child = spawn(bins.kz, ['run', 'db', '--config', cfg], { stdio: ['ignore', 'ignore', 'pipe'] });
  let err = '';
  const port = await new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`kz did not start:\n${err}`)), 20000);
    child.stderr.on('data', (d) => {
      err += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(err);
      if (m) { clearTimeout(t); resolve(Number(m[1])); }
    });
    child.on('exit', (c) => { clearTimeout(t); reject(new Error(`kz exited ${c}:\n${err}`)); });
  });
  return { name: 'kz', url: `http://127.0.0.1:${port}`, child };
}

async function startPouchdbServer(tmp) {
  const port = await freePort();
  const dir = path.join(tmp, 'pouchdb-server');
  fs.mkdirSync(dir, { recursive: true });
  const child = spawn(process.execPath, [bins.pouchdbServer, '--host', '127.0.0.1', '--port', String(port),
    '--dir', dir, '--config', path.join(dir, 'config.json'), '--no-stdout-logs'], { cwd: dir, stdio: ['ignore', 'ignore', 'pipe'] });
  child.stderr.on('data', () => {});
  const url = `http://127.0.0.1:${port}`;
  await waitUp(url, child, 'pouchdb-server');
  return { name: 'pouchdb-server', url, child };
}

async function stop(s) {
  if (s.child.exitCode !== null) return;
  const done = new Promise((r) => s.child.on('exit', r));
  s.child.kill('SIGTERM');
  const t = setTimeout(() => s.child.kill('SIGKILL'), 10000);
  await done;
  clearTimeout(t);
}

function run(bin, argv) {
  return new Promise((resolve, reject) => {
    const c = spawn(bin, argv, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    c.stdout.on('data', (d) => { out += d; });
    c.stderr.on('data', (d) => { err += d; });
    c.on('exit', (code) => {
      const lines = out.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
      if (code !== 0) reject(new Error(`${path.basename(bin)} ${argv.join(' ')} exited ${code}: ${err}`));
      else resolve(lines);
    });
  });
}

// Every phase against one server.
async function measure(s) {
  const db = 'bench';
  const client = (phase, count, extra) => run(bins.client, [s.url, db, phase, String(count), String(N.secs), ...(extra ? [extra] : [])]).then((l) => l[0]);
  await client('setup', 0);
  // The design document first, so both servers hold it during the writes.
  const dd = await fetch(`${s.url}/${db}/_design/devices`, {
    method: 'PUT', headers: { 'Content-Type': 'application/json' },
    body: JSON.stringify({ language: 'javascript', views: { sip_credentials: { map: sipCredentialsMap } } }),
  });
  if (dd.status !== 201) throw new Error(`${s.name}: PUT _design/devices -> ${dd.status}`);
  log(`${s.name}: single writes`);
  const single = await client('single', N.single);
  log(`${s.name}: bulk writes`);
  const bulkRuns = [await client('bulk', N.bulkReqs, String(N.batch))];
  for (let i = 2; i <= N.bulkRuns; i++) {
    const other = (phase, count, extra) => run(bins.client, [s.url, `${db}_b${i}`, phase, String(count), String(N.secs), ...(extra ? [extra] : [])]).then((l) => l[0]);
    await other('setup', 0);
    log(`${s.name}: bulk writes, run ${i} of ${N.bulkRuns} (fresh database)`);
    bulkRuns.push(await other('bulk', N.bulkReqs, String(N.batch)));
  }
  const bulk = medianBy(bulkRuns, rate);
  log(`${s.name}: reads`);
  const reads = await client('reads', N.reads, String(single.docs));
  // The view if the server has it, else an _all_docs range.  Both
  // servers build their index at the first query after the writes: that
  // query is timed apart (it indexes every document written so far).
  const t0 = process.hrtime.bigint();
  const probe = await fetch(`${s.url}/${db}/_design/devices/_view/sip_credentials?key=%22user000001%22`);
  const probeBody = await probe.text();
  let query;
  let first = null;
  if (probe.status === 200) {
    first = Number(process.hrtime.bigint() - t0) / 1e6;
    query = { kind: 'view devices/sip_credentials?key="userNNNNNN"', path: '/_design/devices/_view/sip_credentials?key=%%22user%06u%%22' };
  } else {
    log(`${s.name}: view not available (${probe.status} ${probeBody.slice(0, 120)}); _all_docs range instead`);
    query = { kind: '_all_docs?startkey="devNNNNNN"&limit=20&include_docs=true', path: '/_all_docs?startkey=%%22dev%06u%%22&limit=20&include_docs=true' };
  }
  log(`${s.name}: queries (${query.kind})`);
  const q = await client('query', N.queries, query.path);
  return { single, bulk, bulk_runs: bulkRuns.map(rate), reads, query: { ...q, kind: query.kind, first_query_ms: first } };
}

function rate(p) { return p.docs / p.seconds; }
// The element whose f is the median (the lower middle one of an even count).
function medianBy(xs, f) { return [...xs].sort((a, b) => f(a) - f(b))[Math.floor((xs.length - 1) / 2)]; }
function reqRate(p) { return p.requests / p.seconds; }
function share(p) { return p.client_cpu_s / p.seconds; }

async function main() {
  for (const [k, b] of Object.entries(bins)) if (!fs.existsSync(b) && k !== 'pouchdbServer') throw new Error(`missing ${b} (build the kz_bench_db target in ${build})`);
  ensureNpm();
  const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kz-bench-db-'));
  const results = {};
  try {
    for (const start of [startKz, startPouchdbServer]) {
      const s = await start(tmp);
      try {
        results[s.name] = await measure(s);
      } finally {
        await stop(s);
      }
    }
    // kz's store runs journal_mode=WAL (impl/roles/db/store.c): the
    // ceiling is raw SQLite with the same pragmas; the rollback journal
    // (kz's mode before) is measured beside it for reference.
    const rawRuns = [];
    for (let i = 1; i <= N.bulkRuns; i++) {
      log(`raw SQLite (kz's pragmas: WAL), run ${i} of ${N.bulkRuns}`);
      const [single, bulk] = await run(bins.sqlite, [path.join(tmp, `raw${i}.sqlite`), String(N.single), String(N.bulkReqs), String(N.batch), String(N.secs), 'WAL']);
      rawRuns.push({ single, bulk });
    }
    results.sqlite = { single: medianBy(rawRuns.map((r) => r.single), rate), bulk: medianBy(rawRuns.map((r) => r.bulk), rate), bulk_runs: rawRuns.map((r) => rate(r.bulk)) };
    log('raw SQLite, rollback journal (journal_mode=DELETE)');
    const [dsingle, dbulk] = await run(bins.sqlite, [path.join(tmp, 'raw-delete.sqlite'), String(N.single), String(N.bulkReqs), String(N.batch), String(N.secs), 'DELETE']);
    results.sqlite_delete = { single: dsingle, bulk: dbulk };
  } finally {
    fs.rmSync(tmp, { recursive: true, force: true });
  }

  const kz = results.kz;
  const ps = results['pouchdb-server'];
  const sq = results.sqlite;
  const fig = (r) => ({
    single_writes_per_s: rate(r.single),
    bulk_docs_per_s: rate(r.bulk),
    reads_per_s: reqRate(r.reads),
    query_p50_ms: r.query.p50_us / 1000,
    query_p99_ms: r.query.p99_us / 1000,
    queries_per_s: reqRate(r.query),
  });
  const fk = fig(kz);
  const fp = fig(ps);
  const ratios = {};
  for (const k of Object.keys(fk)) ratios[k] = fk[k] / fp[k];
  const sqFig = { single_writes_per_s: rate(sq.single), bulk_docs_per_s: rate(sq.bulk) };
  const delFig = { single_writes_per_s: rate(results.sqlite_delete.single), bulk_docs_per_s: rate(results.sqlite_delete.bulk) };
  const meta = {
    date: new Date().toISOString(),
    kz_commit: (() => { try { return execFileSync('git', ['-C', root, 'rev-parse', '--short', 'HEAD']).toString().trim(); } catch { return null; } })(),
    node: process.version,
    pouchdb_server: require('./node_modules/pouchdb-server/package.json').version,
    sqlite: execFileSync('sh', ['-c', 'pkg-config --modversion sqlite3 2>/dev/null || true']).toString().trim(),
    cores: os.cpus().length,
    counts: N,
    quick,
    query: kz.query.kind === ps.query.kind ? kz.query.kind : { kz: kz.query.kind, 'pouchdb-server': ps.query.kind },
  };
  const report = {
    meta,
    figures: { kz: fk, 'pouchdb-server': fp, sqlite: sqFig, sqlite_delete: delFig },
    ratios_kz_over_pouchdb_server: ratios,
    ratio_kz_over_sqlite_bulk: fk.bulk_docs_per_s / sqFig.bulk_docs_per_s,
    ratio_kz_over_sqlite_single: fk.single_writes_per_s / sqFig.single_writes_per_s,
    first_view_query_ms: { kz: kz.query.first_query_ms, 'pouchdb-server': ps.query.first_query_ms },
    bulk_runs_docs_per_s: { kz: kz.bulk_runs, 'pouchdb-server': ps.bulk_runs, sqlite: sq.bulk_runs },
    client_cpu_share: Object.fromEntries(['kz', 'pouchdb-server'].map((n) => [n, Object.fromEntries(
      ['single', 'bulk', 'reads', 'query'].map((p) => [p, share(results[n][p])]))])),
    raw: results,
  };

  const f = (x, d = 0) => (x === undefined || x === null || Number.isNaN(x) ? '—' : x.toFixed(d));
  const rows = [
    ['single-document writes/s (PUT)', fk.single_writes_per_s, fp.single_writes_per_s, sqFig.single_writes_per_s, 0, true],
    [`bulk writes, docs/s (_bulk_docs of ${N.batch})`, fk.bulk_docs_per_s, fp.bulk_docs_per_s, sqFig.bulk_docs_per_s, 0, true],
    ['reads/s (GET by id)', fk.reads_per_s, fp.reads_per_s, null, 0, true],
    ['query p50 latency, ms', fk.query_p50_ms, fp.query_p50_ms, null, 3, false],
    ['query p99 latency, ms', fk.query_p99_ms, fp.query_p99_ms, null, 3, false],
    ['queries/s', fk.queries_per_s, fp.queries_per_s, null, 0, true],
  ];
  const keys = Object.keys(fk);
  let md = '# db benchmark: kz vs pouchdb-server vs raw SQLite\n\n';
  md += `Generated by \`bench/db/bench.js\` (ci/bench db) on ${meta.date}, kz ${meta.kz_commit}, Node ${meta.node}, `
    + `pouchdb-server ${meta.pouchdb_server} (LevelDB), SQLite ${meta.sqlite}, ${meta.cores} cores${quick ? ', --quick' : ''}.\n\n`;
  md += `Query: \`${typeof meta.query === 'string' ? meta.query : JSON.stringify(meta.query)}\`.\n\n`;
  md += '| figure | kz | pouchdb-server | kz/pouchdb-server | raw SQLite | kz/raw SQLite |\n|---|---:|---:|---:|---:|---:|\n';
  rows.forEach((r, i) => {
    const ratio = ratios[keys[i]];
    md += `| ${r[0]} | ${f(r[1], r[4])} | ${f(r[2], r[4])} | ${f(ratio, 2)}${r[5] ? '' : ' (lower is better)'} | ${r[3] === null ? '' : f(r[3])} | ${r[3] === null ? '' : f(r[1] / r[3], 2)} |\n`;
  });
  const runs = (xs) => xs.map((x) => f(x)).join(', ');
  md += `\nBulk writes are the median of ${N.bulkRuns} runs each (docs/s): kz ${runs(kz.bulk_runs)}; pouchdb-server ${runs(ps.bulk_runs)}; raw SQLite ${runs(sq.bulk_runs)}.\n`;
  md += `\nRaw SQLite with the rollback journal (journal_mode=DELETE) instead (same synchronous=FULL, exclusive locking, 16 KiB pages): ${f(delFig.single_writes_per_s)} single writes/s, ${f(delFig.bulk_docs_per_s)} bulk docs/s.\n`;
  md += `\nFirst view query after the writes (both servers build their index then, as CouchDB does: it indexes the ${N.single + N.bulkReqs * N.batch} documents written): kz ${f(report.first_view_query_ms.kz, 1)} ms, pouchdb-server ${f(report.first_view_query_ms['pouchdb-server'], 1)} ms.\n\n`;
  md += 'Client CPU share (client CPU seconds / wall seconds of the phase; the server is the bottleneck when this is well under 1):\n\n';
  md += '| server | single | bulk | reads | query |\n|---|---:|---:|---:|---:|\n';
  for (const [n, v] of Object.entries(report.client_cpu_share)) md += `| ${n} | ${f(v.single, 2)} | ${f(v.bulk, 2)} | ${f(v.reads, 2)} | ${f(v.query, 2)} |\n`;
  md += '\nMethod: one C client (libcurl, one keep-alive connection, requests in sequence) drives both servers with the same '
    + 'requests and documents (Kazoo-like device documents of about 560 bytes, bench/db/docgen.h). Each phase stops after its count '
    + `(single ${N.single}, bulk ${N.bulkReqs}×${N.batch}, reads ${N.reads}, queries ${N.queries}) or ${N.secs} s. `
    + 'Raw SQLite: the same documents inserted by bench/db/sqlite_raw.c with kz\'s pragmas (journal_mode=WAL, synchronous=FULL, cache_size 8 MiB, '
    + 'locking_mode=EXCLUSIVE, page_size=16384), one transaction per single write and one per bulk request, one prepared statement, '
    + 'one row in one b-tree per document; kz writes, in the same transaction, a document row (with the body while the document has '
    + 'one revision, else a revision row with its primary-key index entry too) and its by-sequence index entry; its view index '
    + 'catches up at the next view query. '
    + 'Durability differs: kz and raw SQLite fsync every commit; pouchdb-server (LevelDB through leveldown) does not sync its writes.\n';

  fs.mkdirSync(outDir, { recursive: true });
  fs.writeFileSync(path.join(outDir, 'db.json'), `${JSON.stringify(report, null, 2)}\n`);
  fs.writeFileSync(path.join(outDir, 'db.md'), md);
  process.stdout.write(`${md}\nwritten: ${path.relative(root, path.join(outDir, 'db.json'))}, ${path.relative(root, path.join(outDir, 'db.md'))}\n`);
}

main().catch((e) => { console.error(`bench/db: ${e.stack || e}`); process.exit(1); });
