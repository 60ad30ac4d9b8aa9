#!/usr/bin/env python3
"""run_scenarios.py — runs the proxy scenario library (scenarios/sipp/<case>/) in the simulator and for real, and checks each world's outcome against the case's expected.json.

Worlds:
  sim   `kz sim --topology scenarios/topologies/<topology> --uac ... --uas ...` (virtual time).
  real  RabbitMQ (ci/rabbitmq), `kz run db`, `kz seed`, `kz run apps`, `kz run proxy` on
        127.0.0.x loopback addresses, real sipp as the phone and as the stand-in media servers.

Every process the real world starts is bounded in time and stopped afterwards, also when a case
fails or the runner is interrupted (its own process group, killed by pid).  A case that cannot run
in a world says exactly why (the named missing feature); it never passes silently.  With CI=true a
missing sipp or RabbitMQ is a failure; elsewhere the real world is skipped with a message.

Usage: run_scenarios.py --kz PATH [--source DIR] [--world sim|real|both] [--case NAME]...
                        [--out DIR]
       run_scenarios.py --list
Exit status: 0 every outcome is PASS, KNOWN-BUG, MISSING or SKIP (outside CI); 1 otherwise; 2 usage.
"""

import argparse
import csv
import glob
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time

# Real-world addresses of the topology hosts (the simulator uses the topology's own).
REAL_HOSTS = {
    "proxy": "127.0.0.11",
    "core": "127.0.0.21",
    "phone": "127.0.0.31",
    "media1": "127.0.0.41",
    "media2": "127.0.0.42",
    "caller": "127.0.0.51",
}
SIP_PORT = 5060
DB_PORT = 5984
RABBIT_NODE = "kzscen"
CASE_TIMEOUT_S = 25        # one case in the real world, everything included (sipp gets 15 s)
SIM_TIMEOUT_S = 120        # one simulated case (wall)


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------------------------
# Cases


def load_cases(src, names):
    cases = []
    for path in sorted(glob.glob(os.path.join(src, "scenarios/sipp/*/expected.json"))):
        with open(path) as f:
            exp = json.load(f)
        if exp.get("suite") != "proxy":
            continue  # e.g. basic-call: checked by sim/run's own tests
        name = os.path.basename(os.path.dirname(path))
        if names and name not in names:
            continue
        exp["name"] = name
        exp["dir"] = os.path.dirname(path)
        cases.append(exp)
    missing = set(names or []) - {c["name"] for c in cases}
    if missing:
        raise SystemExit("run_scenarios: no such case: %s" % ", ".join(sorted(missing)))
    return cases


def topology_hosts(path):
    """name -> (address, roles) from a topology file (the simple layout shipped files use)."""
    hosts = {}
    name = None
    with open(path) as f:
        for line in f:
            m = re.match(r"\s*-\s*name:\s*([A-Za-z0-9._-]+)", line)
            if m:
                name = m.group(1)
                hosts[name] = [None, []]
                continue
            m = re.match(r"\s*address:\s*([0-9.]+)", line)
            if m and name:
                hosts[name][0] = m.group(1)
            m = re.match(r"\s*roles:\s*\[([^\]]*)\]", line)
            if m and name:
                hosts[name][1] = [r.strip() for r in m.group(1).split(",")]
    return hosts


def keys_for(case, addr_of):
    """The case's -key pairs, "@host" values replaced by that host's address in the world."""
    out = []
    for k, v in sorted(case.get("keys", {}).items()):
        if isinstance(v, str) and v.startswith("@"):
            v = addr_of(v[1:])
        out.append((k, v))
    return out


def check(case, obs):
    """Compares an observed outcome with expected.json's "expect".  Returns a list of mismatches."""
    exp = case["expect"]
    bad = []
    u = exp.get("uac", {})
    for k in ("successful", "failed"):
        if k in u and obs["uac"][k] != u[k]:
            bad.append("uac %s calls: %d, expected %d" % (k, obs["uac"][k], u[k]))
    for code, n in exp.get("uac_codes_received", {}).items():
        got = obs["uac_codes"].get(code, 0)
        if got < n:
            bad.append("uac received %d x %s, expected at least %d" % (got, code, n))
    for code, n in exp.get("uas_codes_sent", {}).items():
        got = obs["uas_codes"].get(code, 0)
        if got < n:
            bad.append("media stand-ins sent %d x %s, expected at least %d" % (got, code, n))
    if "uac_out_of_call_min" in exp and obs["uac"]["out_of_call"] < exp["uac_out_of_call_min"]:
        bad.append("uac out-of-call messages: %d, expected at least %d"
                   % (obs["uac"]["out_of_call"], exp["uac_out_of_call_min"]))
    if obs.get("proxy_stats") is not None:
        for k, n in case.get("real_proxy_stats", {}).items():
            got = obs["proxy_stats"].get(k, 0)
            if got < n:
                bad.append("proxy %s = %d, expected at least %d" % (k, got, n))
    return bad


def verdict(case, world, bad, detail):
    """PASS / FAIL / KNOWN-BUG (an expected failure, named) / FAIL on an unexpected pass of one."""
    known = case.get("known_issue", {}).get(world)
    if bad and known:
        return "KNOWN-BUG", "%s (%s)" % (known, "; ".join(bad))
    if bad:
        return "FAIL", "; ".join(bad) + (" — " + detail if detail else "")
    if known:
        return "FAIL", "passes now: remove known_issue.%s from expected.json (%s)" % (world, known)
    return "PASS", detail


# --------------------------------------------------------------------------------------------
# The simulated world


def run_sim(args, case, out):
    topo = os.path.join(args.source, "scenarios/topologies", case["topology"])
    hosts = topology_hosts(topo)
    cdir = case["dir"]
    cmd = [args.kz, "sim", "--topology", topo,
           "--uac", os.path.normpath(os.path.join(cdir, case.get("uac", "uac.xml"))),
           "--uas", os.path.normpath(os.path.join(cdir, case.get("uas", "uas.xml"))),
           "--seed", str(case.get("seed", 1)), "--rate", str(case.get("rate", 1)),
           "--calls", str(case.get("calls", 1)), "--call-timeout", "30",
           "--allow-failed-calls", "--quiet", "--out", out]
    for k, v in keys_for(case, lambda h: hosts[h][0]):
        cmd += ["--key", k, v]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=SIM_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        return "FAIL", "kz sim did not finish within %d s" % SIM_TIMEOUT_S
    with open(os.path.join(out, "kz-sim.log"), "w") as f:
        f.write(" ".join(cmd) + "\n" + p.stdout + p.stderr)
    summ = os.path.join(out, "summary.json")
    if p.returncode == 2 or not os.path.exists(summ):
        why = (p.stderr.strip().splitlines() or ["exit %d" % p.returncode])[-1]
        if "not built yet" in why:
            return "MISSING", why
        return "FAIL", "kz sim: " + why
    with open(summ) as f:
        s = json.load(f)
    obs = {"uac": {"successful": 0, "failed": 0, "out_of_call": 0}, "uac_codes": {}, "uas_codes": {}}
    for e in s["endpoints"]:
        if e["role"] == "uac":
            obs["uac"]["successful"] += e["calls_successful"]
            obs["uac"]["failed"] += e["calls_failed"]
            obs["uac"]["out_of_call"] += e["out_of_call"]
            for code, c in e["response_codes"].items():
                obs["uac_codes"][code] = obs["uac_codes"].get(code, 0) + c["received"]
        else:
            for code, c in e["response_codes"].items():
                obs["uas_codes"][code] = obs["uas_codes"].get(code, 0) + c["sent"]
    bad = check(case, obs)
    # The simulator's own invariants (every call ended, no leak...) must hold too.
    if s.get("checks"):
        for c in s["checks"]:
            if c.get("kind", "always") == "always" and c.get("true", c.get("true_count")) != c.get("evaluations"):
                bad.append("simulator check failed: %s" % c.get("name"))
    detail = "%d ok, %d failed, sim %.1f s" % (obs["uac"]["successful"], obs["uac"]["failed"],
                                               s.get("sim_seconds", 0))
    return verdict(case, "sim", bad, detail)


# --------------------------------------------------------------------------------------------
# The real world


class Procs:
    """Processes started by the runner: each in its own process group, stopped by pid."""

    def __init__(self):
        self.procs = []

    def start(self, name, cmd, logpath, env=None):
        f = open(logpath, "w")
        p = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             start_new_session=True, env=env)
        self.procs.append((name, p, f))
        return p

    def stop(self, p, timeout=5):
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
                p.wait()
        for i, (n, q, f) in enumerate(self.procs):
            if q is p:
                f.close()
                del self.procs[i]
                break

    def stop_all(self):
        for _, p, _ in list(reversed(self.procs)):
            self.stop(p)


def port_open(host, port, udp=False):
    if udp:
        return True
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_for(pred, timeout):
    end = time.time() + timeout
    while time.time() < end:
        if pred():
            return True
        time.sleep(0.05)
    return False


# RabbitMQ's ports stay below Linux's ephemeral range (32768-60999), where
# any outgoing connection may hold a port for a while: AMQP 7672.., its
# Erlang distribution port DIST_OFFSET above, both passed to ci/rabbitmq.
RABBIT_PORTS = range(7672, 7772)
DIST_OFFSET = 1000


def free_port():
    """A free AMQP port whose Erlang distribution port (port + DIST_OFFSET) is free too."""
    for port in RABBIT_PORTS:
        ok = True
        for p in (port, port + DIST_OFFSET):
            with socket.socket() as s:
                try:
                    s.bind(("127.0.0.1", p))
                except OSError:
                    ok = False
        if ok:
            return port
    raise OSError("no free port for RabbitMQ in %d..%d" % (RABBIT_PORTS[0], RABBIT_PORTS[-1]))


def kz_has(kz, words, needle):
    try:
        p = subprocess.run([kz] + words + ["--help"], capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return re.search(r"^\s+%s\s" % re.escape(needle), p.stdout + p.stderr, re.M) is not None


class RealWorld:
    """RabbitMQ, db, seed and apps for the whole run; a proxy and SIPp per case."""

    def __init__(self, args, workdir):
        self.args = args
        self.dir = workdir
        self.procs = Procs()
        self.rabbit_root = os.path.join(workdir, "rabbitmq")
        self.rabbit_port = None
        self.registrar_missing = None  # the CLI lacks a subcommand the registrar needs (MISSING), or None
        self.registrar_broken = None   # the registrar's processes failed to start (FAIL), or None
        self.setup_error = None

    def rabbit(self, *cmd):
        env = dict(os.environ, KZ_RABBIT_ROOT=self.rabbit_root, KZ_RABBIT_WAIT="60")
        return subprocess.run([os.path.join(self.args.source, "ci/rabbitmq")] + list(cmd), env=env,
                              capture_output=True, text=True, timeout=90)

    def amqp_uri(self):
        return "amqp://guest:guest@127.0.0.1:%d/" % self.rabbit_port

    def setup(self):
        kz = self.args.kz
        self.rabbit_port = free_port()
        p = self.rabbit("start", RABBIT_NODE, str(self.rabbit_port), str(self.rabbit_port + DIST_OFFSET))
        if p.returncode:
            self.setup_error = "RabbitMQ did not start: " + (p.stderr.strip().splitlines() or ["?"])[-1]
            return
        missing = []
        if not kz_has(kz, ["run"], "apps"):
            missing.append("`kz run apps` (the apps role's CLI)")
        if not kz_has(kz, [], "seed"):
            missing.append("`kz seed` (the seed loader's CLI)")
        if missing:
            self.registrar_missing = "missing " + " and ".join(missing) + \
                ": no registrar answers the proxy's authn_req in the real world yet"
            return
        db_cfg = os.path.join(self.dir, "db.json")
        with open(db_cfg, "w") as f:
            json.dump({"listen": "%s:%d" % (REAL_HOSTS["core"], DB_PORT),
                       "data_dir": os.path.join(self.dir, "db-data"), "name": "db"}, f)
        db = self.procs.start("db", [kz, "run", "db", "--config", db_cfg], os.path.join(self.dir, "db.log"))
        if not wait_for(lambda: port_open(REAL_HOSTS["core"], DB_PORT) or db.poll() is not None, 15) \
                or db.poll() is not None:
            self.registrar_broken = "`kz run db` did not start (see db.log)"
            return
        db_url = "http://%s:%d" % (REAL_HOSTS["core"], DB_PORT)
        seed = subprocess.run([kz, "seed", "--url", db_url,
                               os.path.join(self.args.source, "fixtures/seed/basic.json")],
                              capture_output=True, text=True, timeout=60)
        with open(os.path.join(self.dir, "seed.log"), "w") as f:
            f.write(seed.stdout + seed.stderr)
        if seed.returncode:
            self.registrar_broken = "`kz seed` failed (see seed.log): " + \
                (seed.stderr.strip().splitlines() or ["exit %d" % seed.returncode])[-1]
            return
        apps_cfg = os.path.join(self.dir, "apps.json")
        with open(apps_cfg, "w") as f:
            # No "seed": each process draws its own (it names the exclusive reply queue).
            json.dump({"db_url": db_url, "amqp_uris": [self.amqp_uri()], "name": "apps"}, f)
        apps = self.procs.start("apps", [kz, "run", "apps", "--config", apps_cfg],
                                os.path.join(self.dir, "apps.log"))
        time.sleep(1.0)
        if apps.poll() is not None:
            self.registrar_broken = "`kz run apps` exited at start (see apps.log)"

    def teardown(self):
        self.procs.stop_all()
        if self.rabbit_port:
            self.rabbit("stop", RABBIT_NODE)

    def run_case(self, case, out):
        if self.setup_error:
            return "FAIL", self.setup_error
        if case.get("needs_registrar") and self.registrar_broken:
            return "FAIL", self.registrar_broken
        if case.get("needs_registrar") and self.registrar_missing:
            return "MISSING", self.registrar_missing
        src, kz = self.args.source, self.args.kz
        topo = os.path.join(src, "scenarios/topologies", case["topology"])
        thosts = topology_hosts(topo)
        for h in thosts:
            if h not in REAL_HOSTS:
                return "FAIL", "host '%s' of %s has no real-world address in run_scenarios.py" % (h, case["topology"])
        # The proxy's configuration: the topology's side-car, then this world's addresses.
        cfg = {}
        side = re.sub(r"\.ya?ml$", "", topo) + ".proxy.json"
        if os.path.exists(side):
            with open(side) as f:
                cfg = json.load(f)
        proxy_host = [h for h, (a, r) in thosts.items() if "proxy" in r][0]
        uas_hosts = [h for h, (a, r) in thosts.items() if "sipp-uas" in r]
        uac_hosts = [h for h, (a, r) in thosts.items() if "sipp-uac" in r]
        cfg["listen"] = "%s:%d" % (REAL_HOSTS[proxy_host], SIP_PORT)
        cfg["media_servers"] = ["sip:%s:%d" % (REAL_HOSTS[h], SIP_PORT) for h in uas_hosts]
        # Trusted addresses in the side-car are the simulator's: translate them by host.
        sim_to_real = {a: REAL_HOSTS[h] for h, (a, r) in thosts.items()}
        if "trusted" in cfg:
            cfg["trusted"] = [sim_to_real.get(a, a) for a in cfg["trusted"]]
        cfg["bus"] = {"uris": [self.amqp_uri()]}
        cfg["name"] = "proxy"
        cfg["log_level"] = "info"
        cfg_path = os.path.join(out, "proxy.json")
        with open(cfg_path, "w") as f:
            json.dump(cfg, f, indent=1)
        keys = keys_for(case, lambda h: REAL_HOSTS[h])
        keyargs = sum([["-key", k, v] for k, v in keys], [])
        procs = Procs()
        obs = None
        try:
            proxy = procs.start("proxy", [kz, "run", "proxy", "--config", cfg_path], os.path.join(out, "proxy.log"))
            uases = []
            for h in uas_hosts:
                uas = os.path.normpath(os.path.join(case["dir"], case.get("uas", "uas.xml")))
                uases.append(procs.start("uas-" + h, [
                    "timeout", str(CASE_TIMEOUT_S), "sipp", "-sf", uas, "-i", REAL_HOSTS[h], "-p", str(SIP_PORT),
                    "-trace_msg", "-message_file", os.path.join(out, "uas-%s.msg" % h), "-nostdin",
                    "-trace_err", "-error_file", os.path.join(out, "uas-%s.err" % h)] + keyargs,
                    os.path.join(out, "uas-%s.log" % h)))
            # The proxy is up once its log says so (and its bus is connected: give it a moment).
            plog = os.path.join(out, "proxy.log")
            if not wait_for(lambda: "listening on" in open(plog).read() or proxy.poll() is not None, 10) \
                    or proxy.poll() is not None:
                return "FAIL", "`kz run proxy` did not start: " + open(plog).read().strip()[-300:]
            time.sleep(0.5)
            h = uac_hosts[0]
            uac = os.path.normpath(os.path.join(case["dir"], case.get("uac", "uac.xml")))
            stf = os.path.join(out, "uac.csv")
            cmd = ["sipp", "-sf", uac, "-i", REAL_HOSTS[h], "-p", str(SIP_PORT),
                   "%s:%d" % (REAL_HOSTS[proxy_host], SIP_PORT), "-m", str(case.get("calls", 1)),
                   "-r", str(case.get("rate", 1)), "-timeout", "%ds" % (CASE_TIMEOUT_S - 10), "-timeout_error",
                   "-trace_stat", "-stf", stf, "-fd", "1", "-trace_msg",
                   "-message_file", os.path.join(out, "uac.msg"), "-trace_err",
                   "-error_file", os.path.join(out, "uac.err"), "-nostdin"] + keyargs
            with open(os.path.join(out, "uac.log"), "w") as f:
                try:
                    up = subprocess.run(cmd, stdout=f, stderr=subprocess.STDOUT, timeout=CASE_TIMEOUT_S,
                                        start_new_session=True)
                    rc = up.returncode
                except subprocess.TimeoutExpired:
                    rc = None
            # Let the media stand-ins finish their calls (BYE's 200, pauses), then stop everything.
            time.sleep(case.get("linger_s", 0.5))
            procs.stop(proxy)
            for u in uases:
                procs.stop(u)
            if rc is None:
                return "FAIL", "sipp (uac) did not finish within %d s" % CASE_TIMEOUT_S
            obs = self.observe(out, uas_hosts)
        finally:
            procs.stop_all()
        bad = check(case, obs)
        detail = "%d ok, %d failed" % (obs["uac"]["successful"], obs["uac"]["failed"])
        return verdict(case, "real", bad, detail)

    @staticmethod
    def codes(msgfile, direction):
        """Status codes of the messages sipp logged as `direction` ("received" or "sent")."""
        out = {}
        if not os.path.exists(msgfile):
            return out
        want = None
        with open(msgfile, errors="replace") as f:
            for line in f:
                if re.match(r"\w+ message (received|sent)", line):
                    want = direction in line.split()[2]
                    continue
                if want is not None and line.strip():
                    m = re.match(r"SIP/2\.0 (\d{3}) ", line)
                    if want and m:
                        out[m.group(1)] = out.get(m.group(1), 0) + 1
                    want = None
        return out

    def observe(self, out, uas_hosts):
        obs = {"uac": {"successful": 0, "failed": 0, "out_of_call": 0}, "uac_codes": {}, "uas_codes": {},
               "proxy_stats": {}}
        stf = os.path.join(out, "uac.csv")
        if os.path.exists(stf):
            rows = list(csv.reader(open(stf), delimiter=";"))
            if len(rows) >= 2:
                h, last = rows[0], rows[-1]
                for key, col in (("successful", "SuccessfulCall(C)"), ("failed", "FailedCall(C)"),
                                 ("out_of_call", "OutOfCallMsgs(C)")):
                    if col in h:
                        obs["uac"][key] = int(last[h.index(col)] or 0)
        obs["uac_codes"] = self.codes(os.path.join(out, "uac.msg"), "received")
        for hst in uas_hosts:
            for code, n in self.codes(os.path.join(out, "uas-%s.msg" % hst), "sent").items():
                obs["uas_codes"][code] = obs["uas_codes"].get(code, 0) + n
        plog = os.path.join(out, "proxy.log")
        if os.path.exists(plog):
            for line in open(plog, errors="replace"):
                if "kz run proxy: stats" in line:
                    for k, v in re.findall(r"(\w+)=(\d+)", line):
                        obs["proxy_stats"][k] = int(v)
        return obs


# --------------------------------------------------------------------------------------------


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--source", default=os.path.join(os.path.dirname(os.path.abspath(__file__)), "../.."))
    ap.add_argument("--kz")
    ap.add_argument("--world", choices=("sim", "real", "both"), default="both")
    ap.add_argument("--case", action="append")
    ap.add_argument("--out")
    ap.add_argument("--list", action="store_true")
    args = ap.parse_args()
    args.source = os.path.abspath(args.source)
    cases = load_cases(args.source, args.case)
    if args.list:
        for c in cases:
            log("%-24s %s" % (c["name"], c["proves"]))
        return 0
    if not args.kz:
        ap.error("--kz PATH is needed to run cases")
    args.kz = os.path.abspath(args.kz)
    out = os.path.abspath(args.out) if args.out else tempfile.mkdtemp(prefix="kz-scenarios-")
    os.makedirs(out, exist_ok=True)
    ci = os.environ.get("CI", "").lower() in ("1", "true", "yes")
    results = []
    t0 = time.time()

    if args.world in ("sim", "both"):
        for c in cases:
            d = os.path.join(out, "sim", c["name"])
            os.makedirs(d, exist_ok=True)
            o, why = run_sim(args, c, d)
            results.append((c["name"], "sim", o, why))
            log("%-24s sim   %-9s %s" % (c["name"], o, why))

    if args.world in ("real", "both"):
        lacks = [t for t, ok in (("sipp", shutil.which("sipp")),
                                 ("rabbitmq-server", os.path.exists("/usr/lib/rabbitmq/bin/rabbitmq-server")))
                 if not ok]
        if lacks:
            o = "FAIL" if ci else "SKIP"
            why = "%s not installed (ci/setup installs it)%s" % (" and ".join(lacks), "" if ci else "; CI fails here")
            for c in cases:
                results.append((c["name"], "real", o, why))
            log("real world: %s: %s" % (o, why))
        else:
            rw = RealWorld(args, os.path.join(out, "real"))
            os.makedirs(rw.dir, exist_ok=True)

            def on_signal(signo, frame):
                raise KeyboardInterrupt

            old = signal.signal(signal.SIGTERM, on_signal)
            try:
                rw.setup()
                for c in cases:
                    d = os.path.join(out, "real", c["name"])
                    os.makedirs(d, exist_ok=True)
                    try:
                        o, why = rw.run_case(c, d)
                    except (OSError, ValueError) as e:
                        o, why = "FAIL", "runner error: %s" % e
                    results.append((c["name"], "real", o, why))
                    log("%-24s real  %-9s %s" % (c["name"], o, why))
            finally:
                rw.teardown()
                signal.signal(signal.SIGTERM, old)

    # The table.
    log("\n%-24s %-5s %-9s %s" % ("case", "world", "outcome", "detail"))
    log("%s %s %s %s" % ("-" * 24, "-" * 5, "-" * 9, "-" * 40))
    for name, world, o, why in results:
        log("%-24s %-5s %-9s %s" % (name, world, o, why))
    counts = {}
    for _, _, o, _ in results:
        counts[o] = counts.get(o, 0) + 1
    failed = counts.get("FAIL", 0)
    passed = counts.get("PASS", 0)
    log("\noutputs in %s (%.0f s)" % (out, time.time() - t0))
    log("scenarios: %d passed, %d failed, %d skipped (known bugs %d, missing features %d, not installed %d)"
        % (passed, failed, counts.get("KNOWN-BUG", 0) + counts.get("MISSING", 0) + counts.get("SKIP", 0),
           counts.get("KNOWN-BUG", 0), counts.get("MISSING", 0), counts.get("SKIP", 0)))
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
