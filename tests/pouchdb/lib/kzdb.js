// lib/kzdb.js — starts `kz run db` on 127.0.0.1 (port 0: kz picks a free one) with a temporary data dir, and stops it.
'use strict';
const { spawn } = require('node:child_process');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');

// The kz binary: $KZ_BIN (set by ctest to the built target), else the dev build.
function kzBin() {
  if (process.env.KZ_BIN) return process.env.KZ_BIN;
  const guess = path.resolve(__dirname, '../../../build/dev/impl/cli/kz');
  if (fs.existsSync(guess)) return guess;
  throw new Error('KZ_BIN is not set and build/dev/impl/cli/kz does not exist');
}

// Starts a db server; resolves to {url, dir, log(), stop()}.  stop() sends
// SIGTERM, waits for the exit and removes the data dir; it rejects when kz
// exits with a non-zero status (a sanitizer report, a crash) so tests see it.
async function startKzDb(opts = {}) {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'kz-pouchdb-'));
  const cfg = {
    listen: '127.0.0.1:0',
    data_dir: path.join(dir, 'data'),
    seed: opts.seed ?? 1,
    log_level: opts.logLevel ?? 'warn',
  };
  if (opts.changesTimeoutMs) cfg.changes_timeout_ms = opts.changesTimeoutMs;
  fs.writeFileSync(path.join(dir, 'db.json'), JSON.stringify(cfg));
  const child = spawn(kzBin(), ['run', 'db', '--config', path.join(dir, 'db.json')], {
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  let log = '';
  let exited = null;
  const exit = new Promise((resolve) => child.on('exit', (code, signal) => {
    exited = { code, signal };
    resolve(exited);
  }));
  const port = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`kz run db did not start in 20 s:\n${log}`)), 20000);
    child.stderr.on('data', (d) => {
      log += d;
      const m = /listening on 127\.0\.0\.1:(\d+)/.exec(log);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    exit.then((e) => {
      clearTimeout(timer);
      reject(new Error(`kz run db exited (${JSON.stringify(e)}) before listening:\n${log}`));
    });
  });
  const url = `http://127.0.0.1:${port}`;
  return {
    url,
    dir,
    pid: child.pid,
    log: () => log,
    async stop() {
      if (!exited) {
        child.kill('SIGTERM');
        const t = setTimeout(() => child.kill('SIGKILL'), 10000);
        await exit;
        clearTimeout(t);
      }
      fs.rmSync(dir, { recursive: true, force: true });
      if (exited.code !== 0) {
        throw new Error(`kz run db exited with ${JSON.stringify(exited)}:\n${log.slice(-4000)}`);
      }
    },
  };
}

module.exports = { startKzDb, kzBin };
