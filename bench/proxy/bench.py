#!/usr/bin/env python3
# bench.py — kz's proxy against Kamailio under the same SIPp load (loopback only, bounded): REGISTER+auth and relayed-call ceilings, CPU at the ceiling, RSS with 10 000 users; writes reports/bench/proxy.json and proxy.md.
"""Usage: bench.py --build BUILD_DIR [--quick] [--reps N] [--dur S] [--only kz|kamailio]
                   [--workloads reg,call] [--out DIR] [--keep DIR]

Method (../shared/research/anchors-sip.md, pinned variant):
  * the proxy runs on CPU 1 (taskset -c 1), every SIPp on CPU 0;
  * a load step is one bounded SIPp run of DUR seconds' worth of calls
    (-r RATE -rp 1000 -m RATE*DUR); it holds when every call ended, failed
    <= 0.1%, uac+uas retransmissions <= 0.1% of calls and the achieved rate
    >= 95% of the target;
  * a ceiling search: the first steps x1.5 from a guess until a step fails,
    then 3 bisections; later ones step x1.15 from the running median, then 2
    bisections; rates rounded to 50 (10 below 1000); the proxy is restarted
    after every failed step; a failed step that ran under foreign load (the
    machine is shared) is repeated once;
  * the result is the median of REPS searches;
  * CPU% = utime+stime of the proxy's processes (/proc/PID/stat, Kamailio's
    main process and its children) over the middle half of the step at the
    ceiling; 100% = one core.
Every packet goes to 127.0.0.1/127.0.0.2; every SIPp has -m and -timeout, every
wait is bounded, and every process started here is stopped by its PID.
"""
import argparse
import csv
import datetime
import json
import os
import platform
import shutil
import signal
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(os.path.dirname(HERE))
SCEN = os.path.join(HERE, "scenarios")
TCK = os.sysconf("SC_CLK_TCK")

PROXY = ("127.0.0.1", 25060)
UAS = ("127.0.0.2", 25070)
UAC_PORT = {"call": 25061, "reg": 25062, "mem": 25063}
FIRST_USER, NUSERS, REALM, PASSWORD = 100000, 10000, "kz.bench", "secret"
PROXY_CPU, SIPP_CPU = "1", "0"
NICE = []  # ["nice", "-n", "-10"] with --nice -10: the same for the proxies and the SIPps

# The anchors (anchors-sip.md, Kamailio 5.6.3 on this kind of machine).
ANCHORS = {
    "kamailio_proxy_calls_per_s_unpinned_children2": 2250,
    "kamailio_proxy_calls_per_s_pinned_cpu1_children2": 1600,
    "kamailio_registrations_auth_per_s_unpinned": 11700,
    "kamailio_rss_sum_10k_contacts_mb": 70.3,
    "kamailio_pss_sum_10k_contacts_mb": 24.1,
}

LOG = None


def log(msg):
    line = "[%s] %s" % (time.strftime("%H:%M:%S"), msg)
    print(line, flush=True)
    if LOG:
        LOG.write(line + "\n")
        LOG.flush()


def round_rate(r):
    if r < 1000:
        return max(10, int(round(r / 10.0)) * 10)
    return int(round(r / 50.0)) * 50


# ------------------------------------------------------------ /proc helpers

def proc_ticks(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            s = f.read()
        fields = s[s.rindex(")") + 2:].split()
        return int(fields[11]) + int(fields[12])  # utime + stime
    except (OSError, ValueError, IndexError):
        return None


def children_of(pid):
    out = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open("/proc/%s/stat" % d) as f:
                s = f.read()
            if int(s[s.rindex(")") + 2:].split()[1]) == pid:
                out.append(int(d))
        except (OSError, ValueError):
            pass
    return out


def machine_busy_ticks():
    """Busy jiffies of the machine, niced work left out: the other tenants'
    fuzzers run at nice 15 and barely compete with the processes measured."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return v[0] + v[2] + v[5] + v[6] + (v[7] if len(v) > 7 else 0)  # user system irq softirq steal


def udp_drops():
    """Datagrams dropped per local UDP address (/proc/net/udp 'drops')."""
    out = {}
    try:
        with open("/proc/net/udp") as f:
            for line in f.readlines()[1:]:
                v = line.split()
                ip, port = v[1].split(":")
                addr = "%s:%d" % (".".join(str(b) for b in int(ip, 16).to_bytes(4, "little")), int(port, 16))
                out[addr] = out.get(addr, 0) + int(v[-1])
    except (OSError, ValueError, IndexError):
        pass
    return out


def udp_errors():
    """System-wide UDP receive-buffer and input errors (/proc/net/snmp)."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [line.split() for line in f if line.startswith("Udp:")]
        d = dict(zip(rows[0][1:], (int(x) for x in rows[1][1:])))
        return d.get("RcvbufErrors", 0), d.get("InErrors", 0)
    except (OSError, IndexError, ValueError):
        return 0, 0


def mem_kb(pid, key, fname="status"):
    try:
        with open("/proc/%d/%s" % (pid, fname)) as f:
            for line in f:
                if line.startswith(key + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return None


def udp_bound(ip, port):
    want = "%08X:%04X" % (int.from_bytes(bytes(int(x) for x in ip.split(".")), "little"), port)
    try:
        with open("/proc/net/udp") as f:
            return any(line.split()[1] == want for line in f.readlines()[1:])
    except OSError:
        return False


def wait_quiet(max_wait):
    """Waits (at most max_wait s) for the machine to be mostly idle; returns
    the busy share (% of one core) seen last and the seconds waited."""
    t0 = time.time()
    while True:
        b0 = machine_busy_ticks()
        time.sleep(1.0)
        busy = (machine_busy_ticks() - b0) * 100.0 / TCK
        if busy < 50 or time.time() - t0 >= max_wait:
            return busy, time.time() - t0


def stop_pid(p, grace=10.0):
    if p is None or p.poll() is not None:
        return
    try:
        p.send_signal(signal.SIGTERM)
        p.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        p.kill()
        p.wait(timeout=5)


# ------------------------------------------------------------ the proxies

class Proxy:
    """One proxy under test: start (pinned), pids for CPU, stop."""

    def __init__(self, name, work, build):
        self.name, self.work, self.build = name, work, build
        self.p = None
        self.runs = 0
        self.last_stats = None

    def cmd(self):
        raise NotImplementedError

    def start(self):
        self.runs += 1
        self.errpath = os.path.join(self.work, "%s.%d.log" % (self.name, self.runs))
        self.err = open(self.errpath, "w")
        self.p = subprocess.Popen(["taskset", "-c", PROXY_CPU] + NICE + self.cmd(), stdout=self.err,
                                  stderr=subprocess.STDOUT, cwd=self.work, start_new_session=True)
        t0 = time.time()
        while time.time() - t0 < 30:
            if self.p.poll() is not None:
                raise RuntimeError("%s exited at start (see %s)" % (self.name, self.errpath))
            if udp_bound(*PROXY):
                time.sleep(0.5 if self.name == "kz" else 1.5)  # Kamailio forks its workers after binding
                return
            time.sleep(0.1)
        raise RuntimeError("%s did not bind %s:%d within 30 s" % (self.name, PROXY[0], PROXY[1]))

    def pids(self):
        if not self.p or self.p.poll() is not None:
            return []
        return [self.p.pid] + children_of(self.p.pid)

    def cpu_ticks(self):
        return sum(t for t in (proc_ticks(pid) for pid in self.pids()) if t is not None)

    def running(self):
        return self.p is not None and self.p.poll() is None

    def stop(self):
        kids = self.pids()[1:]
        stop_pid(self.p)
        # Kamailio's main process stops its children; make sure of it.
        deadline = time.time() + 10
        while kids and time.time() < deadline:
            kids = [k for k in kids if os.path.exists("/proc/%d" % k) and proc_ticks(k) is not None
                    and not open("/proc/%d/stat" % k).read().split(") ")[1].startswith("Z")]
            time.sleep(0.2)
        for k in kids:
            try:
                os.kill(k, signal.SIGKILL)
            except OSError:
                pass
        self.p = None
        self.err.close()
        with open(self.errpath) as f:
            for line in f:
                if "stats {" in line:
                    try:
                        self.last_stats = json.loads(line[line.index("{"):])
                    except ValueError:
                        pass

    def memory(self):
        pids = self.pids()
        main = pids[0]
        return {
            "main_rss_kb": mem_kb(main, "VmRSS"),
            "sum_rss_kb": sum(mem_kb(p, "VmRSS") or 0 for p in pids),
            "sum_pss_kb": sum(mem_kb(p, "Pss", "smaps_rollup") or 0 for p in pids),
            "processes": len(pids),
        }


class KzProxy(Proxy):
    def cmd(self):
        return [os.path.join(self.build, "bench", "proxy", "kz_bench_proxy_server"),
                "--listen", "%s:%d" % PROXY, "--media", "%s:%d" % UAS, "--users", str(NUSERS),
                "--first", str(FIRST_USER), "--realm", REALM, "--password", PASSWORD,
                "--max-seconds", "7200"]


class Kamailio(Proxy):
    def cmd(self):
        self.ctl = os.path.join(self.work, "kamailio_ctl")
        return ["kamailio", "-f", os.path.join(HERE, "kamailio.cfg"), "-DD", "-E",
                "-l", "udp:%s:%d" % PROXY, "-n", "2", "-m", "1024", "-M", "8",
                "-P", os.path.join(self.work, "kamailio.pid"),
                "-A", 'CTL_SOCK="unix:%s"' % self.ctl,
                "-A", 'UAS_URI="sip:%s:%d"' % UAS,
                "-A", "FIRST_USER=%d" % FIRST_USER, "-A", "LAST_USER=%d" % (FIRST_USER + NUSERS - 1),
                "-A", 'PASSWORD="%s"' % PASSWORD]

    def kamcmd(self, *args):
        try:
            return subprocess.run(["kamcmd", "-s", "unix:" + self.ctl] + list(args), capture_output=True,
                                  text=True, timeout=10).stdout
        except (OSError, subprocess.TimeoutExpired):
            return ""

    def memory(self):
        m = super().memory()
        for line in self.kamcmd("core.shmmem").splitlines():
            if line.strip().startswith("real_used:"):
                m["shm_real_used_kb"] = int(line.split()[1]) // 1024
        return m


# ------------------------------------------------------------ SIPp

def sipp_stats(path):
    """Rows of a -trace_stat file as dicts (the last row holds the totals)."""
    try:
        with open(path) as f:
            rows = list(csv.reader(f, delimiter=";"))
    except OSError:
        return []
    if len(rows) < 2:
        return []
    h = rows[0]
    return [dict(zip(h, r)) for r in rows[1:] if len(r) >= len(h) - 1]


def stat_int(row, key):
    try:
        return int(row.get(key, "0") or 0)
    except ValueError:
        return 0


def stat_time(row):
    try:
        return float(row["CurrentTime"].split("\t")[-1])
    except (KeyError, ValueError):
        return None


SIPPS = []  # every SIPp started, to stop the live ones if the run is interrupted


def sipp(args, tag, work, **kw):
    p = subprocess.Popen(["taskset", "-c", SIPP_CPU] + NICE + ["sipp"] + args, stdout=subprocess.DEVNULL,
                         stderr=open(os.path.join(work, tag + ".stderr"), "w"), cwd=work,
                         start_new_session=True, **kw)
    SIPPS[:] = [q for q in SIPPS if q.poll() is None] + [p]
    return p


def run_step(proxy, workload, rate, dur, work, step_no):
    """One bounded load step.  Returns a dict with the outcome."""
    busy_before, waited = wait_quiet(5)
    tag = "%s_%s_%d_%d" % (proxy.name, workload, rate, step_no)
    m = rate * dur
    uas = None
    if workload == "call":
        uas = sipp(["-sf", os.path.join(SCEN, "uas.xml"), "-i", UAS[0], "-p", str(UAS[1]), "-nostdin",
                    "-buff_size", "1048576", "-default_behaviors", "all,-abortunexp", "-m", str(m),
                    "-timeout", "%ds" % (dur * 3 + 30), "-trace_stat", "-stf", tag + "_uas.csv", "-fd", "1",
                    "-trace_err", "-error_file", tag + "_uas_err.log"], tag + "_uas", work)
        t0 = time.time()
        while not udp_bound(*UAS) and time.time() - t0 < 5:
            time.sleep(0.05)
        scen = ["-sf", os.path.join(SCEN, "uac.xml"), "-recv_timeout", "5000",
                "-default_behaviors", "all,-abortunexp"]
    else:
        scen = ["-sf", os.path.join(SCEN, "reg_auth.xml"), "-recv_timeout", "5000"]
    uac_args = ["%s:%d" % PROXY] + scen + [
        "-inf", os.path.join(work, "users.csv"), "-i", "127.0.0.1", "-p", str(UAC_PORT[workload]),
        "-r", str(rate), "-rp", "1000", "-m", str(m), "-nostdin", "-buff_size", "1048576",
        "-timeout", "%ds" % (dur * 3 + 20), "-timeout_error", "-trace_stat", "-stf", tag + "_uac.csv",
        "-fd", "1", "-trace_err", "-error_file", tag + "_uac_err.log"]
    start = time.time()
    e0, d0 = udp_errors(), udp_drops()
    uac = sipp(uac_args, tag + "_uac", work)
    # CPU over the middle half of the sending time.
    time.sleep(dur * 0.25)
    c0 = (time.time(), proxy.cpu_ticks(), proc_ticks(uac.pid) or 0, proc_ticks(uas.pid) if uas else 0,
          machine_busy_ticks())
    time.sleep(dur * 0.5)
    c1 = (time.time(), proxy.cpu_ticks(), proc_ticks(uac.pid) or 0, proc_ticks(uas.pid) if uas else 0,
          machine_busy_ticks())
    try:
        uac.wait(timeout=dur * 3 + 40)
    except subprocess.TimeoutExpired:
        log("  uac did not end in time: killing it")
        uac.kill()
        uac.wait(timeout=5)
    elapsed = time.time() - start
    e1, d1 = udp_errors(), udp_drops()
    proxy_addr, uac_addr, uas_addr = "%s:%d" % PROXY, "127.0.0.1:%d" % UAC_PORT[workload], "%s:%d" % UAS
    drops = {k: d1.get(a, 0) - d0.get(a, 0) for k, a in (("proxy", proxy_addr), ("uac", uac_addr),
                                                            ("uas", uas_addr))}
    if uas:
        # The uas ends by itself after m calls (4 s timewait); SIGUSR1 asks
        # SIPp to stop once its calls are done when some never came.
        try:
            uas.wait(timeout=8)
        except subprocess.TimeoutExpired:
            uas.send_signal(signal.SIGUSR1)
            try:
                uas.wait(timeout=8)
            except subprocess.TimeoutExpired:
                stop_pid(uas, 5)
    wall = c1[0] - c0[0]
    pct = lambda a, b: round((b - a) * 100.0 / TCK / wall, 1) if wall > 0 else None
    cpu_proxy, cpu_uac, cpu_uas = pct(c0[1], c1[1]), pct(c0[2], c1[2]), pct(c0[3], c1[3]) if uas else None
    busy = pct(c0[4], c1[4])
    ours = (cpu_proxy or 0) + (cpu_uac or 0) + (cpu_uas or 0)
    rows = sipp_stats(os.path.join(work, tag + "_uac.csv"))
    last = rows[-1] if rows else {}
    created, ok, failed = (stat_int(last, "TotalCallCreated"), stat_int(last, "SuccessfulCall(C)"),
                           stat_int(last, "FailedCall(C)"))
    retrans = stat_int(last, "Retransmissions(C)")
    if uas:
        urows = sipp_stats(os.path.join(work, tag + "_uas.csv"))
        retrans += stat_int(urows[-1], "Retransmissions(C)") if urows else 0
    # Achieved rate: time from the first dump to the moment the last call
    # was created, interpolated between the 1 s dumps.
    achieved = None
    t_first = stat_time(rows[0]) if rows else None
    prev = None
    for r in rows:
        n, t = stat_int(r, "TotalCallCreated"), stat_time(r)
        if n >= m and t is not None and t_first is not None:
            if prev and prev[0] < m and t > prev[1]:
                t = prev[1] + (t - prev[1]) * (m - prev[0]) / float(n - prev[0])
            # The first dump is written when SIPp starts (0 calls).
            achieved = m / max(t - t_first, 1e-3)
            break
        prev = (n, t)
    holds = (created == m and ok + failed >= m and failed <= 0.001 * m and retrans <= 0.001 * m
             and achieved is not None and achieved >= 0.95 * rate and proxy.running())
    res = {"proxy": proxy.name, "workload": workload, "rate": rate, "calls": m, "created": created,
           "successful": ok, "failed": failed, "retransmissions": retrans,
           "achieved_rate": round(achieved, 1) if achieved else None, "holds": holds,
           "cpu_proxy_pct": cpu_proxy, "cpu_uac_pct": cpu_uac, "cpu_uas_pct": cpu_uas,
           "cpu_machine_pct": busy, "foreign_pct": round(max(0.0, (busy or 0) - ours), 1),
           "busy_before_pct": round(busy_before, 1), "waited_s": round(waited, 1),
           "elapsed_s": round(elapsed, 1), "uac_exit": uac.returncode, "files": tag,
           "udp_rcvbuf_errors": e1[0] - e0[0], "udp_in_errors": e1[1] - e0[1], "socket_drops": drops}
    log("  %-8s %-4s %6d/s: %s  ok %d fail %d retrans %d achieved %s  cpu proxy %s%% uac %s%% uas %s%%"
        " foreign %s%% drops proxy/uac/uas %d/%d/%d" % (
            proxy.name, workload, rate, "HOLDS" if holds else "fails", ok, failed, retrans, res["achieved_rate"],
            cpu_proxy, cpu_uac, cpu_uas, res["foreign_pct"], drops["proxy"], drops["uac"], drops["uas"]))
    return res


def ceiling_search(proxy, workload, guess, factor, bisections, dur, work, steps, max_steps=16):
    """Returns (ceiling, the step at the ceiling)."""
    count = [0]

    def step(rate):
        if not proxy.running():
            proxy.start()
        for attempt in range(2):
            count[0] += 1
            r = run_step(proxy, workload, rate, dur, work, len(steps))
            r["attempt"] = attempt
            steps.append(r)
            if not r["holds"]:
                proxy.stop()
                proxy.start()
            if r["holds"] or r["foreign_pct"] < 25 or count[0] >= max_steps or attempt == 1:
                return r
            log("  (failed under foreign load: repeating once)")
        return r

    lo, lo_step, hi = None, None, None
    rate = round_rate(guess)
    r = step(rate)
    if r["holds"]:
        lo, lo_step = rate, r
        while count[0] < max_steps:
            nxt = round_rate(rate * factor)
            nxt = nxt if nxt > rate else rate + 10
            r = step(nxt)
            if not r["holds"]:
                hi = nxt
                break
            lo, lo_step, rate = nxt, r, nxt
    else:
        hi = rate
        while count[0] < max_steps and rate > 10:
            rate = round_rate(rate / factor)
            r = step(rate)
            if r["holds"]:
                lo, lo_step = rate, r
                break
            hi = rate
    for _ in range(bisections):
        if lo is None or hi is None or count[0] >= max_steps:
            break
        mid = round_rate((lo + hi) / 2.0)
        if mid <= lo or mid >= hi:
            break
        r = step(mid)
        if r["holds"]:
            lo, lo_step = mid, r
        else:
            hi = mid
    return lo or 0, lo_step


def register_all(proxy, work):
    """Registers the 10 000 users once (1000/s) and returns the SIPp totals."""
    tag = "%s_mem" % proxy.name
    p = sipp(["%s:%d" % PROXY, "-sf", os.path.join(SCEN, "reg_auth.xml"), "-inf",
              os.path.join(work, "users.csv"), "-i", "127.0.0.1", "-p", str(UAC_PORT["mem"]), "-r", "1000",
              "-m", str(NUSERS), "-nostdin", "-timeout", "60s", "-timeout_error", "-trace_stat", "-stf",
              tag + ".csv", "-trace_err", "-error_file", tag + "_err.log"], tag, work)
    try:
        p.wait(timeout=90)
    except subprocess.TimeoutExpired:
        stop_pid(p, 5)
    rows = sipp_stats(os.path.join(work, tag + ".csv"))
    last = rows[-1] if rows else {}
    return {"successful": stat_int(last, "SuccessfulCall(C)"), "failed": stat_int(last, "FailedCall(C)")}


def memory_phase(proxy, work):
    proxy.start()
    time.sleep(1.0)
    rest = proxy.memory()
    reg = register_all(proxy, work)
    time.sleep(1.0)
    loaded = proxy.memory()
    extra = {}
    if isinstance(proxy, Kamailio):
        out = proxy.kamcmd("stats.get_statistics", "usrloc:location_contacts")
        extra["kamailio_stats"] = out.strip()
    proxy.stop()
    if proxy.last_stats:
        extra["kz_registers_ok"] = proxy.last_stats.get("registers_ok")
        extra["kz_authn_requests"] = proxy.last_stats.get("authn_requests")
    res = {"at_rest": rest, "after_10k_registrations": loaded, "registrations": reg}
    res.update(extra)
    log("  %-8s memory: at rest main RSS %s kB (sum %s kB, PSS %s kB); after %d registrations main RSS %s kB"
        " (sum %s kB, PSS %s kB)" % (proxy.name, rest["main_rss_kb"], rest["sum_rss_kb"], rest["sum_pss_kb"],
                                     reg["successful"], loaded["main_rss_kb"], loaded["sum_rss_kb"],
                                     loaded["sum_pss_kb"]))
    return res


# ------------------------------------------------------------ report

def fmt(v, nd=0):
    if v is None:
        return "–"
    if isinstance(v, float):
        return ("%." + str(nd) + "f") % v
    return str(v)


def ratio(a, b):
    return round(a / b, 2) if a and b else None


def write_report(res, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    with open(os.path.join(out_dir, "proxy.json"), "w") as f:
        json.dump(res, f, indent=1)
    kz, kam = res["results"].get("kz", {}), res["results"].get("kamailio", {})

    def g(d, *path):
        for p in path:
            d = d.get(p) if isinstance(d, dict) else None
        return d

    def mb(kb):
        return round(kb / 1024.0, 1) if kb else None

    rows = [
        ("registrations/s with digest auth at the ceiling (REGISTER, 401, REGISTER+auth, 200)",
         g(kz, "reg", "ceiling"), g(kam, "reg", "ceiling"), "≥ 1 (aim 1.5)"),
        ("  = REGISTER requests/s", (g(kz, "reg", "ceiling") or 0) * 2 or None,
         (g(kam, "reg", "ceiling") or 0) * 2 or None, ""),
        ("  proxy CPU % at that rate (100 = one core)", g(kz, "reg", "cpu_pct"), g(kam, "reg", "cpu_pct"), ""),
        ("  proxy CPU µs per registration", g(kz, "reg", "cpu_us_per"), g(kam, "reg", "cpu_us_per"), ""),
        ("relayed calls/s at the ceiling (INVITE/180/200/ACK/BYE/200 to a SIPp UAS)",
         g(kz, "call", "ceiling"), g(kam, "call", "ceiling"), "≥ 1 (aim 1.5)"),
        ("  proxy CPU % at that rate (100 = one core)", g(kz, "call", "cpu_pct"), g(kam, "call", "cpu_pct"),
         ""),
        ("  proxy CPU µs per call", g(kz, "call", "cpu_us_per"), g(kam, "call", "cpu_us_per"), ""),
        ("RSS at rest, MB (Kamailio: sum over its processes)",
         mb(g(kz, "memory", "at_rest", "sum_rss_kb")), mb(g(kam, "memory", "at_rest", "sum_rss_kb")), ""),
        ("RSS with 10 000 registered users, MB (Kamailio: sum over its processes)",
         mb(g(kz, "memory", "after_10k_registrations", "sum_rss_kb")),
         mb(g(kam, "memory", "after_10k_registrations", "sum_rss_kb")), "lower is better"),
        ("PSS with 10 000 registered users, MB (shared memory counted once)",
         mb(g(kz, "memory", "after_10k_registrations", "sum_pss_kb")),
         mb(g(kam, "memory", "after_10k_registrations", "sum_pss_kb")), "lower is better"),
        ("main process RSS with 10 000 registered users, MB",
         mb(g(kz, "memory", "after_10k_registrations", "main_rss_kb")),
         mb(g(kam, "memory", "after_10k_registrations", "main_rss_kb")), ""),
    ]
    res["table"] = [{"what": w, "kz": a, "kamailio": b, "kz/kamailio": ratio(a, b), "target": t}
                    for (w, a, b, t) in rows]
    with open(os.path.join(out_dir, "proxy.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = []
    md.append("# Proxy benchmark: kz's proxy vs Kamailio under the same SIPp load")
    md.append("")
    md.append("Generated by `bench/proxy/bench.py` at %s on %s (%d cores). %s" % (
        res["generated"], res["machine"]["cpu"], res["machine"]["cores"], res["note"]))
    md.append("")
    md.append("| | kz | Kamailio %s | kz/Kamailio | target |" % res["versions"].get("kamailio_short", ""))
    md.append("|---|---:|---:|---:|---|")
    for r in res["table"]:
        md.append("| %s | %s | %s | %s | %s |" % (r["what"], fmt(r["kz"], 1), fmt(r["kamailio"], 1),
                                                  fmt(r["kz/kamailio"], 2), r["target"]))
    md.append("")
    for name, d in (("kz", kz), ("Kamailio", kam)):
        for wl in ("reg", "call"):
            if g(d, wl, "ceilings"):
                md.append("* %s %s: ceilings of the %d searches %s (median %s); SIPp CPU at the ceiling uac %s%% / "
                          "uas %s%%; foreign load during that step %s%%." % (
                              name, "registrations" if wl == "reg" else "calls", len(d[wl]["ceilings"]),
                              d[wl]["ceilings"], d[wl]["ceiling"], g(d, wl, "step", "cpu_uac_pct"),
                              fmt(g(d, wl, "step", "cpu_uas_pct")), g(d, wl, "step", "foreign_pct")))
    md.append("")
    md.append("## Method")
    md.append("")
    for line in res["method_text"]:
        md.append(line)
    md.append("")
    md.append("Every load step (rate, outcome, CPU of proxy and SIPps, foreign load) is in `proxy.json` "
              "(`results.<proxy>.<workload>.steps`).")
    md.append("")
    with open(os.path.join(out_dir, "proxy.md"), "w") as f:
        f.write("\n".join(md))


def summarise(steps_by_search, ceilings, dur):
    ceiling = int(statistics.median(ceilings)) if ceilings else 0
    # CPU at the ceiling: the holding step(s) at the rate closest to the
    # median ceiling.
    holds = [s for ss in steps_by_search for s in ss if s["holds"] and s["cpu_proxy_pct"] is not None]
    best = min(holds, key=lambda s: (abs(s["rate"] - ceiling), -s["rate"])) if holds else None
    out = {"ceiling": ceiling, "ceilings": ceilings, "step": best,
           "steps": [s for ss in steps_by_search for s in ss]}
    if best:
        out["cpu_pct"] = best["cpu_proxy_pct"]
        out["cpu_pct_rate"] = best["rate"]
        out["cpu_us_per"] = round(best["cpu_proxy_pct"] / 100.0 * 1e6 / best["rate"], 1)
    return out


def make_result(a, versions, cpu, note, results, elapsed):
    """The report's data: results plus how they were measured."""
    method = [
        "* kz: `kz_bench_proxy_server` (release build, -O2): the proxy role (`kz_proxy`) on the libuv "
        "driver, UDP only, with an **in-process bus** that answers every `authn_req` on the next loop "
        "turn from a table of the %d users (`authn_resp` with the password; the proxy checks the digest "
        "itself and caches the credentials as it does with a real bus; it still builds and publishes a "
        "`reg_success` per REGISTER, which the in-process bus drops). No RabbitMQ: the proxy's auth "
        "path is exercised without a network round trip. Pike and the bare-IP traffic filter are off." % NUSERS,
        "* Kamailio: Debian's package (`%s`), `bench/proxy/kamailio.cfg`: usrloc db_mode=0, digest "
        "auth (`auth_challenge` / `pv_auth_check`, qop=auth) of the same users from an in-memory htable "
        "filled at start-up, tm+rr stateful relay with `record_route()` to the UAS; `-n 2 -m 1024 -M 8` "
        "(anchors: children=2, 1 GB shm)." % versions.get("kamailio", "not installed"),
        "* Priority: the proxies and the SIPps run at nice %d (`--nice`; 0 = the anchors' method). The machine "
        "is shared with other work (builds, fuzzers, RabbitMQ, test suites) that took 1–1.6 cores during "
        "development runs; without the boost, steps of either proxy failed by retransmissions with the "
        "proxy at 7–20%% CPU, and which proxy met the noise decided the comparison." % a.nice,
        "* Pinning as in the anchors' pinned variant: the proxy (all Kamailio processes) on CPU 1 "
        "(`taskset -c 1`), every SIPp on CPU 0. %s, UDP, proxy on 127.0.0.1:%d, UAS on "
        "127.0.0.2:%d (a different loopback address so that kz's dispatcher does not take the UAC for a "
        "media server: it trusts media servers by IP)." % (versions["sipp"], PROXY[1], UAS[1]),
        "* Workloads: `reg` = `scenarios/reg_auth.xml` (REGISTER, 401, REGISTER with Authorization, "
        "200; 10 000 users round-robin, Expires 3600); `call` = `scenarios/uac.xml` → proxy → "
        "`scenarios/uas.xml` (INVITE, 100, 180, 200, ACK, BYE, 200; ACK/BYE via the Record-Route set). "
        "Both SIPps with `-buff_size 1048576`, the call ones with `-default_behaviors all,-abortunexp`.",
        "* A step = one SIPp run of %d s worth of calls (`-r R -rp 1000 -m R*%d`); it holds when every "
        "call ended, failed ≤ 0.1%%, uac+uas retransmissions ≤ 0.1%% of calls and the achieved rate ≥ 95%% "
        "of R. Ceiling search as the anchors: ×1.5 from a guess until a failure, 3 bisections; later "
        "searches ×1.15 from the running median, 2 bisections; rates rounded to 50 (10 below 1000); the "
        "proxy restarted after every failed step; a failed step under foreign load (> 25%% of a core) is "
        "repeated once. Result = median of the searches." % (a.dur, a.dur),
        "* CPU% = utime+stime from /proc/PID/stat (Kamailio: main process + children) over the middle "
        "half of the step at the ceiling; 100% = one core (so ≤ 100% by construction here). The SIPps' "
        "CPU and the foreign load (machine busy time from /proc/stat minus ours, niced work left out; "
        "it includes the kernel's softirq work for our own loopback traffic) are in each step.",
        "* Memory: a fresh proxy, RSS at rest, then %d registrations (each user once, 1000/s), RSS again "
        "(/proc/PID/status VmRSS; PSS from smaps_rollup; Kamailio: summed over its %s processes, its "
        "shared memory counted in each RSS but once in PSS)." % (NUSERS, "7"),
        "* Anchors for this machine (anchors-sip.md, unpinned unless said): Kamailio proxy 2 250 calls/s "
        "(pinned as here: 1 600), registrar+auth 11 700 registrations/s, Σ RSS 70.3 MB / Σ PSS 24.1 MB "
        "with 10 000 contacts.",
    ]
    return {"generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
           "machine": {"cpu": cpu, "cores": os.cpu_count(), "kernel": platform.release()},
           "versions": versions, "note": note, "params": {"reps": a.reps, "dur_s": a.dur, "users": NUSERS,
                                                        "nice": a.nice,
                                                        "proxy_cpu": PROXY_CPU, "sipp_cpu": SIPP_CPU},
           "anchors": ANCHORS, "results": results, "method_text": method, "elapsed_s": round(elapsed)}


def on_term(signo, frame):
    raise KeyboardInterrupt("signal %d" % signo)


def main():
    global LOG
    signal.signal(signal.SIGTERM, on_term)
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build", required=True)
    ap.add_argument("--quick", action="store_true", help="1 search of 4 s steps (about 6 minutes)")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--dur", type=int, default=8)
    ap.add_argument("--only", choices=["kz", "kamailio"])
    ap.add_argument("--workloads", default="reg,call")
    ap.add_argument("--no-memory", action="store_true")
    ap.add_argument("--nice", type=int, default=-10 if os.geteuid() == 0 else 0,
                    help="niceness of the proxies and SIPps (default -10 as root: the machine is shared; "
                         "0 = the anchors' method)")
    ap.add_argument("--out", default=os.path.join(ROOT, "reports", "bench"))
    ap.add_argument("--work", help="keep SIPp/proxy files in this folder (default: a temporary one, removed)")
    a = ap.parse_args()
    if a.nice:
        NICE[:] = ["nice", "-n", str(a.nice)]
    if a.quick:
        a.reps, a.dur = 1, 4
    build = os.path.abspath(a.build)
    server = os.path.join(build, "bench", "proxy", "kz_bench_proxy_server")
    for tool in ("sipp", "taskset"):
        if not shutil.which(tool):
            sys.exit("bench/proxy: %s is not installed (Debian: sip-tester, util-linux)" % tool)
    if not os.path.exists(server):
        sys.exit("bench/proxy: %s missing (build target kz_bench_proxy)" % server)
    if os.cpu_count() < 2:
        sys.exit("bench/proxy: needs 2 cores (proxy on CPU 1, SIPp on CPU 0)")
    have_kam = shutil.which("kamailio") is not None
    if not have_kam:
        log("kamailio is not installed (Debian: apt-get install kamailio): measuring kz only")
    for ip, port in [PROXY, UAS] + [("127.0.0.1", p) for p in UAC_PORT.values()]:
        if udp_bound(ip, port):
            sys.exit("bench/proxy: UDP %s:%d is in use" % (ip, port))

    work = os.path.abspath(a.work) if a.work else None
    if work:
        os.makedirs(work, exist_ok=True)
    else:
        import tempfile
        work = tempfile.mkdtemp(prefix="kz-bench-proxy-")
    LOG = open(os.path.join(work, "bench.log"), "w")
    with open(os.path.join(work, "users.csv"), "w") as f:
        f.write("SEQUENTIAL\n")
        for i in range(NUSERS):
            f.write("u%d;%s\n" % (FIRST_USER + i, PASSWORD))

    proxies = []
    if a.only != "kamailio":
        proxies.append(KzProxy("kz", work, build))
    if have_kam and a.only != "kz":
        proxies.append(Kamailio("kamailio", work, build))
    workloads = [w for w in a.workloads.split(",") if w in ("reg", "call")]
    guesses = {"reg": 2000, "call": 400}

    versions = {"sipp": subprocess.run(["sipp", "-v"], capture_output=True, text=True).stdout.strip()
                .splitlines()[0].strip() if True else ""}
    if have_kam:
        kv = subprocess.run(["kamailio", "-v"], capture_output=True, text=True).stdout.splitlines()
        versions["kamailio"] = kv[0] if kv else ""
        versions["kamailio_short"] = kv[0].split()[2] if kv and len(kv[0].split()) > 2 else ""
    cpu = platform.processor()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    t_start = time.time()
    results = {p.name: {} for p in proxies}
    searches, ceilings = {}, {}

    def report(done, total):
        for (name, w), ss in searches.items():
            if ceilings[(name, w)]:
                results[name][w] = summarise(ss, ceilings[(name, w)], a.dur)
        elapsed = time.time() - t_start
        note = ("One run of %.0f min, %d search(es) per figure; the machine is shared with other work, "
                "so steps record the foreign load they ran under (expect ±15%%–25%% noise between runs)."
                % (elapsed / 60.0, a.reps))
        if done < total:
            note += " **Partial: %d of %d ceiling searches done when the run stopped.**" % (done, total)
        res = make_result(a, versions, cpu, note, results, elapsed)
        write_report(res, a.out)
        return res

    total = a.reps * len(workloads) * len(proxies)
    done = 0
    res = None
    try:
        if not a.no_memory:
            log("memory: RSS at rest and after registering %d users (1000/s)" % NUSERS)
            for p in proxies:
                results[p.name]["memory"] = memory_phase(p, work)
        searches.update({(p.name, w): [] for p in proxies for w in workloads})
        ceilings.update({(p.name, w): [] for p in proxies for w in workloads})
        for rep in range(a.reps):
            for w in workloads:
                for p in proxies:
                    key = (p.name, w)
                    if rep == 0:
                        guess, factor, bis = guesses[w], 1.5, 3
                    else:
                        guess, factor, bis = statistics.median(ceilings[key]), 1.15, 2
                    log("search %d/%d: %s %s from %d/s (x%.2f, %d bisections)" % (
                        rep + 1, a.reps, p.name, w, round_rate(guess), factor, bis))
                    steps = []
                    c, _ = ceiling_search(p, w, guess, factor, bis, a.dur, work, steps)
                    p.stop()
                    searches[key].append(steps)
                    ceilings[key].append(c)
                    log("  -> %s %s ceiling %d/s" % (p.name, w, c))
                    done += 1
                    report(done, total)
    except KeyboardInterrupt:
        log("interrupted: writing what was measured")
    finally:
        for q in SIPPS:
            stop_pid(q, 5)
        for p in proxies:
            if p.running():
                p.stop()
    res = report(done, total)
    print("")
    print("%-78s %10s %10s %8s" % ("", "kz", "kamailio", "kz/kam"))
    for r in res["table"]:
        print("%-78s %10s %10s %8s" % (r["what"][:78], fmt(r["kz"], 1), fmt(r["kamailio"], 1),
                                         fmt(r["kz/kamailio"], 2)))
    print("\nreports: %s/proxy.json, proxy.md (work files: %s)" % (a.out, work))
    if not a.work:
        LOG.close()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
