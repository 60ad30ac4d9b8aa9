#!/usr/bin/env python3
# protos_run.py — sends every PROTOS c07-sip case to the real proxy (kz_security_proxy) and checks it survives and keeps answering.
"""PROTOS c07-sip against the running proxy.

usage: protos_run.py --harness BIN [--tar FILE] [--cases A-B] [--lanes N] [--rate R]
                     [--lane-interval S] [--wait S] [--no-media] [--report FILE]

Each case's INVITE goes over UDP (over TCP when it is larger than a UDP
datagram can be), then its teardown (ACK when a final response came back,
else CANCEL), as the original PROTOS tool did.  Placeholders are filled to
target the proxy: To test@kz.test, From protos@kz.test (domains, so the
scanner filter, which drops requests naming bare IPs, lets the cases
through to the rest of the pipeline), the sender's real address and port
in Via, a unique Call-ID and branch per case, Content-Length recomputed.

Anti-flood: the cases are spread over LANES source addresses of 127/8
(127.1.0.1 ...), one case at a time per address and at most one case start
per LANE_INTERVAL seconds on each, i.e. at most 2/LANE_INTERVAL requests
per second per source, well under the proxy's default 50 per 2 s.  The
anti-flood stays on and untouched: every case reaches the parser and the
pipeline, which is the point; the harness's flood_bans must stay 0.

A stand-in media server (this script, on 127.1.255.1) answers what the
proxy dispatches: INVITE 486, OPTIONS/CANCEL 200, others 501, so cases
that parse are also forwarded and relayed (the forwarding code sees the
mutated headers too).  --no-media leaves the dispatcher empty (480).

Passes when: the proxy is still running after the last case; an OPTIONS
and a REGISTER from a fresh source are answered (200, 401); the valid case
0 got a non-400 final answer; every datagram the proxy sent is a
well-formed status line; the proxy was never provoked into a flood ban;
and it exits 0 on SIGTERM (no sanitizer report, no leaked allocation).
Exit 77 (skip) when the corpus is absent, unless CI is set."""

import argparse
import collections
import json
import os
import selectors
import socket
import sys
import tarfile
import time
import uuid

sys.dont_write_bytecode = True  # no __pycache__ in the source tree
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import sec_common as sc  # noqa: E402

UDP_MAX = 65000
TO = "test@kz.test"
FROM = "protos@kz.test"
MEDIA_IP = "127.1.255.1"


def load_cases(tar_path, first, last):
    """[(case number, INVITE template, teardown template)] in case order."""
    out = []
    with tarfile.open(tar_path, "r:gz") as t:
        for m in t:
            if not m.isfile():
                continue
            name = os.path.basename(m.name)
            if not name.isdigit():
                continue
            n = int(name)
            if n < first or n > last:
                continue
            d = t.extractfile(m).read()
            recs = []
            pos = 0
            for _ in range(2):
                sp = d.index(b" ", pos)
                ln = int(d[pos:sp])
                recs.append(d[sp + 1:sp + 1 + ln])
                pos = sp + 1 + ln
            out.append((n, recs[0], recs[1]))
    out.sort()
    return out


def fill(tpl, ip, port, call_id, branch, teardown):
    s = tpl
    for k, v in ((b"<To>", TO), (b"<From>", FROM), (b"<From-Address>", ip), (b"<From-IP>", ip),
                 (b"<Local-Port>", str(port)), (b"<Call-ID>", call_id), (b"<CSeq>", "1"),
                 (b"<Branch-ID>", branch), (b"<Teardown-Method>", teardown)):
        s = s.replace(k, v.encode())
    if b"<Content-Length>" in s:
        i = s.find(b"\r\n\r\n")
        body = len(s) - (i + 4) if i >= 0 else 0
        s = s.replace(b"<Content-Length>", str(body).encode())
    return s


class Case:
    def __init__(self, n, invite, teardown):
        self.n, self.invite_tpl, self.teardown_tpl = n, invite, teardown
        self.codes = []       # status codes of the INVITE's responses, in order
        self.reasons = []
        self.td_codes = []    # responses to the teardown (CANCEL)
        self.final = None
        self.tcp = False
        self.closed = False   # TCP: the proxy closed the connection
        self.bad = 0          # datagrams that were not a status line


class Lane:
    """One source address; runs its cases one after the other."""

    def __init__(self, ip):
        self.ip = ip
        self.queue = collections.deque()
        self.cur = None
        self.sock = None
        self.state = "idle"
        self.deadline = 0.0
        self.next_start = 0.0
        self.rbuf = b""


def udp_rcvbuf_errors():
    """Datagrams the kernel dropped for full receive buffers (machine-wide,
    Linux), to tell load losses from drops by the proxy."""
    try:
        with open("/proc/net/snmp") as f:
            rows = [l.split() for l in f if l.startswith("Udp:")]
        return int(rows[1][rows[0].index("RcvbufErrors")])
    except (OSError, ValueError, IndexError):
        return None


def cseq_method(data):
    for line in data.split(b"\r\n")[1:]:
        if line.lower().startswith(b"cseq:"):
            return line.split()[-1] if line.split() else b""
    return b""


def media_reply(data):
    """The stand-in media server's answer to a request the proxy sent."""
    head, _, _ = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    parts = lines[0].split(b" ")
    method = parts[0]
    if method == b"ACK" or method.startswith(b"SIP/"):
        return None
    code = {b"INVITE": b"486 Busy Here", b"OPTIONS": b"200 OK", b"CANCEL": b"200 OK"}.get(
        method, b"501 Not Implemented")
    keep = []
    for l in lines[1:]:
        name = l.split(b":", 1)[0].strip().lower()
        if name in (b"via", b"v", b"from", b"f", b"call-id", b"i", b"cseq"):
            keep.append(l)
        elif name in (b"to", b"t"):
            keep.append(l + (b"" if b";tag=" in l else b";tag=media1"))
    return b"SIP/2.0 " + code + b"\r\n" + b"\r\n".join(keep) + b"\r\nContent-Length: 0\r\n\r\n"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--harness", required=True)
    shared = os.environ.get("KZ_SHARED_DIR", os.path.join(os.path.dirname(__file__), "../../../shared"))
    ap.add_argument("--tar", default=os.path.join(shared, "corpora/protos/c07-sip-cases-all.tar.gz"))
    ap.add_argument("--cases", default="0-4526")
    ap.add_argument("--lanes", type=int, default=128)
    ap.add_argument("--rate", type=float, default=300.0, help="case starts per second, all lanes together")
    ap.add_argument("--lane-interval", type=float, default=0.25)
    ap.add_argument("--wait", type=float, default=2.0, help="seconds to wait for a final answer")
    ap.add_argument("--no-media", action="store_true")
    ap.add_argument("--listen", default="127.0.0.2:0")
    ap.add_argument("--report", help="write the summary as JSON here")
    ap.add_argument("--workdir", default=os.environ.get("TMPDIR", "/tmp"))
    a = ap.parse_args()

    if not os.path.exists(a.tar):
        sc.missing(f"PROTOS corpus not found at {a.tar}")
    first, last = (int(x) for x in a.cases.split("-"))
    t_load = time.monotonic()
    cases = load_cases(a.tar, first, last)
    sc.log(f"loaded {len(cases)} PROTOS cases from {a.tar} in {time.monotonic() - t_load:.1f}s")

    sel = selectors.DefaultSelector()
    media = None
    args = ["--listen", a.listen, "--duration", "900", "--log-level", "warn"]
    if not a.no_media:
        media = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        media.bind((MEDIA_IP, 0))
        media.setblocking(False)
        sel.register(media, selectors.EVENT_READ, ("media", None))
        args += ["--media", f"{MEDIA_IP}:{media.getsockname()[1]}"]
    logpath = os.path.join(a.workdir, f"kz-security-protos-{os.getpid()}.log")
    h = sc.Harness(a.harness, args, logpath)
    target = h.addr
    sc.log(f"proxy harness at {target[0]}:{target[1]} (pid {h.p.pid}), log {logpath}")
    failures = []
    summary = {}
    try:
        lanes = [Lane(f"127.1.{(i + 1) // 256}.{(i + 1) % 256}") for i in range(a.lanes)]
        objs = []
        for n, inv, td in cases:
            objs.append(Case(n, inv, td))
        media_rx = collections.Counter()
        t0 = time.monotonic()
        rcvbuf0 = udp_rcvbuf_errors()
        done = 0
        last_log = t0

        def finish_case(ln):
            nonlocal done
            if ln.sock:
                try:
                    sel.unregister(ln.sock)
                except (KeyError, ValueError):
                    pass
                ln.sock.close()
            ln.sock, ln.cur, ln.state, ln.rbuf = None, None, "idle", b""
            done += 1

        def on_response(ln, data):
            c = ln.cur
            code = sc.status_of(data)
            if code is None:
                c.bad += 1
                return
            if ln.state == "teardown" and cseq_method(data) == b"CANCEL":
                c.td_codes.append(code)
                return
            c.codes.append(code)
            first_line = data.split(b"\r\n", 1)[0].decode(errors="replace")
            c.reasons.append(first_line[12:])
            if code >= 200 and c.final is None:
                c.final = code
                if ln.state == "teardown":
                    # The INVITE's answer to our CANCEL (487): ACK it so
                    # the proxy stops retransmitting.
                    send(ln, fill(c.teardown_tpl, ln.ip, c.port, c.call_id, c.branch, "ACK"))

        def send(ln, msg):
            try:
                if ln.cur.tcp:
                    ln.sock.sendall(msg)
                else:
                    ln.sock.sendto(msg, target)
            except OSError:
                pass

        def start_case(ln, now):
            c = ln.queue.popleft()
            ln.cur = c
            call_id = f"protos{c.n:07d}x{uuid.uuid4().hex[:8]}"
            branch = uuid.uuid4().hex[:10]
            c.call_id, c.branch = call_id, branch
            big = len(c.invite_tpl) > UDP_MAX
            if big:
                s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
                s.bind((ln.ip, 0))
                s.settimeout(2.0)
                s.connect(target)
                c.tcp = True
            else:
                s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
                s.bind((ln.ip, 0))
            port = s.getsockname()[1]
            c.port = port
            msg = fill(c.invite_tpl, ln.ip, port, call_id, branch, "CANCEL")
            c.invite_len = len(msg)
            try:
                if big:
                    s.sendall(msg)
                else:
                    s.sendto(msg, target)
            except OSError as e:
                c.send_error = str(e)
            s.setblocking(False)
            ln.sock = s
            sel.register(s, selectors.EVENT_READ, ("lane", ln))
            ln.state = "invite"
            ln.deadline = now + a.wait
            ln.next_start = now + a.lane_interval

        def teardown(ln, now):
            c = ln.cur
            if c.tcp and c.closed:
                finish_case(ln)
                return
            method = "ACK" if c.final is not None else "CANCEL"
            c.teardown = method
            send(ln, fill(c.teardown_tpl, ln.ip, c.port, c.call_id, c.branch, method))
            ln.state = "teardown"
            # Collect the CANCEL's answer (or a late one) briefly.
            ln.deadline = now + (0.05 if method == "ACK" else 0.2)

        def run_pass(todo, rate):
            """Runs todo (Case objects) through the lanes at rate case starts/s;
            False when the proxy died."""
            nonlocal done, last_log
            done = 0
            for i, c in enumerate(todo):
                lanes[i % len(lanes)].queue.append(c)
            next_global = time.monotonic()
            while done < len(todo):
                now = time.monotonic()
                for ln in lanes:
                    if ln.state == "idle" and ln.queue and now >= ln.next_start and now >= next_global:
                        next_global = max(next_global + 1.0 / rate, now - 0.05)
                        start_case(ln, now)
                    elif ln.state == "invite" and (now >= ln.deadline or ln.cur.final is not None or
                                                   (ln.cur.tcp and ln.cur.closed)):
                        teardown(ln, now)
                    elif ln.state == "teardown" and now >= ln.deadline:
                        finish_case(ln)
                if not h.alive():
                    failures.append(f"the proxy died during the run (exit {h.p.poll()}), "
                                    f"around case {max((c.n for c in objs if c.codes or c.final), default=0)}")
                    return False
                if now - last_log > 5:
                    last_log = now
                    sc.log(f"  {done}/{len(todo)} cases done")
                for key, _ in sel.select(timeout=0.01):
                    kind, ln = key.data
                    if kind == "media":
                        while True:
                            try:
                                data, src = media.recvfrom(65535)
                            except BlockingIOError:
                                break
                            media_rx[data.split(b" ", 1)[0].decode(errors="replace")[:20]] += 1
                            rep = media_reply(data)
                            if rep:
                                media.sendto(rep, src)
                        continue
                    if ln.cur is None:
                        continue
                    if ln.cur.tcp:
                        try:
                            data = ln.sock.recv(65535)
                        except (BlockingIOError, ConnectionError):
                            data = b""
                        if not data:
                            ln.cur.closed = True
                            sel.unregister(ln.sock)
                            continue
                        ln.rbuf += data
                        while b"\r\n\r\n" in ln.rbuf:
                            msg, _, ln.rbuf = ln.rbuf.partition(b"\r\n\r\n")
                            on_response(ln, msg + b"\r\n\r\n")
                    else:
                        while True:
                            try:
                                data = ln.sock.recv(65535)
                            except (BlockingIOError, ConnectionRefusedError):
                                break
                            on_response(ln, data)
            return True

        ok = run_pass(objs, a.rate)
        elapsed = time.monotonic() - t0
        # A second, slow pass over the UDP cases that got no answer at all
        # tells deliberate drops from datagrams lost to a busy machine.
        retried = [c for c in objs if not c.tcp and not c.codes]
        again = {}
        if ok and retried and h.alive():
            redo = [Case(c.n, c.invite_tpl, c.teardown_tpl) for c in retried]
            run_pass(redo, min(a.rate, 20.0))
            again = {c.n: c for c in redo}
            for c in retried:
                r = again[c.n]
                if r.codes:
                    c.codes, c.reasons, c.final, c.retried = r.codes, r.reasons, r.final, True
        sc.log(f"sent {len(objs)} cases in {elapsed:.1f}s; {len(retried)} unanswered UDP cases sent again, "
               f"{sum(1 for c in retried if c.codes)} of them answered then")

        # The proxy must still be there and still answer a fresh source.
        alive = h.alive()
        opt = sc.probe(target, "127.1.254.1", "OPTIONS") if alive else None
        reg = sc.probe(target, "127.1.254.2", "REGISTER", user="dev1001",
                       domain="acme.sip.example.com") if alive else None
        stats = h.snapshot() if alive else None

        finals = collections.Counter(c.final for c in objs if c.final is not None)
        any_resp = sum(1 for c in objs if c.codes)
        reasons400 = collections.Counter(r for c in objs for code, r in zip(c.codes, c.reasons)
                                         if code == 400)
        by_group = {}
        groups_file = os.path.join(os.path.dirname(a.tar), "GROUPS.tsv")
        if os.path.exists(groups_file):
            with open(groups_file) as f:
                next(f)
                for line in f:
                    g, lo, cnt, hi = line.split("\t")
                    lo, hi = int(lo), int(hi)
                    sub = [c for c in objs if lo <= c.n <= hi]
                    if sub:
                        by_group[g] = {"cases": len(sub),
                                       "answered": sum(1 for c in sub if c.final is not None),
                                       "codes": dict(collections.Counter(c.final for c in sub if c.final))}
        summary = {
            "cases": len(objs),
            "sent_udp": sum(1 for c in objs if not c.tcp),
            "sent_tcp": sum(1 for c in objs if c.tcp),
            "tcp_closed_by_proxy": sum(1 for c in objs if c.tcp and c.closed),
            "answered_final": sum(finals.values()),
            "answered_any": any_resp,
            "unanswered": len(objs) - any_resp,
            "unanswered_udp_cases": [c.n for c in objs if not c.tcp and not c.codes],
            "final_codes": {str(k): v for k, v in sorted(finals.items())},
            "reasons_400": dict(reasons400.most_common()),
            "unanswered_udp_sent_again": len(retried),
            "answered_on_second_try": sum(1 for c in retried if c.codes),
            "kernel_udp_rcvbuf_drops": (udp_rcvbuf_errors() - rcvbuf0) if rcvbuf0 is not None else None,
            "cancelled_after_trying": [c.n for c in objs if 100 in c.codes and getattr(c, "teardown", "") == "CANCEL"],
            "not_status_lines": sum(c.bad for c in objs),
            "teardown_answers": dict(collections.Counter(x for c in objs for x in c.td_codes)),
            "teardowns": dict(collections.Counter(getattr(c, "teardown", "none") for c in objs)),
            "media_server_received": dict(media_rx),
            "seconds": round(elapsed, 1),
            "lanes": a.lanes,
            "case0_final": next((c.final for c in objs if c.n == 0), None),
            "after": {"alive": alive, "options_fresh_source": opt, "register_fresh_source": reg},
            "stats_after": stats,
            "groups": by_group,
        }
        if not alive:
            failures.append("the proxy is not running after the cases")
        if opt != 200:
            failures.append(f"OPTIONS from a fresh source after the cases: {opt} (want 200)")
        if reg != 401:
            failures.append(f"REGISTER from a fresh source after the cases: {reg} (want 401)")
        if first == 0 and (summary["case0_final"] is None or summary["case0_final"] == 400):
            failures.append(f"the valid case 0 got {summary['case0_final']}")
        if summary["not_status_lines"]:
            failures.append(f"{summary['not_status_lines']} datagrams from the proxy were not status lines")
        if stats and stats["flood_bans"]:
            failures.append(f"the proxy banned {stats['flood_bans']} sources: pacing too fast, "
                            "some cases never reached the parser")
    finally:
        rc, final = h.stop()
        if media:
            media.close()
    summary["dispatcher_log"] = h.log_lines("dispatcher:")
    summary["harness_exit"] = rc
    summary["stats_exit"] = final
    if rc != 0:
        failures.append(f"the harness exited {rc} (sanitizer report, leak or crash; see {logpath})")

    print("\n==== PROTOS c07-sip against kz_proxy ====")
    print(f"cases sent: {summary.get('cases')} ({summary.get('sent_udp')} UDP, {summary.get('sent_tcp')} TCP "
          f"for those over {UDP_MAX} bytes; the proxy closed {summary.get('tcp_closed_by_proxy')} of them)")
    print(f"answered: {summary.get('answered_final')} with a final response, "
          f"{summary.get('answered_any')} with any response; unanswered (dropped): {summary.get('unanswered')}")
    print(f"  unanswered UDP cases: {summary.get('unanswered_udp_cases')}")
    print(f"  ({summary.get('unanswered_udp_sent_again')} unanswered UDP cases were sent a second time, slowly: "
          f"{summary.get('answered_on_second_try')} answered then; kernel UDP receive-buffer drops during the run: "
          f"{summary.get('kernel_udp_rcvbuf_drops')})")
    print(f"final codes: {summary.get('final_codes')}")
    print("400 reasons:")
    for r, n in list((summary.get("reasons_400") or {}).items())[:25]:
        print(f"  {n:5d}  400 {r}")
    print(f"teardowns: {summary.get('teardowns')}, their answers {summary.get('teardown_answers')}; the stand-in media server received {summary.get('media_server_received')}")
    if summary.get("cancelled_after_trying") or summary.get("dispatcher_log"):
        print(f"forwarded INVITEs left without a final answer (CANCELled): {summary.get('cancelled_after_trying')}; "
              f"dispatcher events: {summary.get('dispatcher_log')}")
    print(f"after: {summary.get('after')}; run time {summary.get('seconds')} s over {a.lanes} source addresses")
    print(f"proxy stats at exit: {final}")
    print(f"harness exit status: {rc}")
    if a.report:
        with open(a.report, "w") as f:
            json.dump(summary, f, indent=1, sort_keys=True)
    if failures:
        print("\nFAIL:\n  " + "\n  ".join(failures))
        return 1
    print("\nPASS")
    return 0


if __name__ == "__main__":
    sys.exit(main())
