# sec_common.py — shared pieces of the security checks: start/stop the proxy harness, one-shot SIP probes, skip rules.
"""Helpers for protos_run.py and sipvicious_run.py.

Every child process is started with PR_SET_PDEATHSIG so that it dies with
the test even when ctest kills the test with SIGKILL on a timeout, and is
also bounded in time by its own options (the harness's --duration, sipp's
-timeout, svwar's --maximumtime)."""

import ctypes
import json
import os
import select
import signal
import socket
import subprocess
import sys
import time
import uuid

SKIP = 77  # ctest SKIP_RETURN_CODE

_libc = None


def _die_with_parent():
    global _libc
    try:
        if _libc is None:
            _libc = ctypes.CDLL("libc.so.6", use_errno=True)
        _libc.prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
    except OSError:
        pass


def spawn(argv, **kw):
    """Popen with the child tied to our life (SIGTERM when we die)."""
    return subprocess.Popen(argv, preexec_fn=_die_with_parent, **kw)


def in_ci():
    return os.environ.get("CI", "").lower() in ("1", "true", "yes")


def missing(what):
    """A prerequisite is absent: skip (77) locally, fail in CI."""
    if in_ci():
        print(f"FAIL: {what} (CI is set: the security checks must run)")
        sys.exit(1)
    print(f"SKIP: {what}")
    sys.exit(SKIP)


def log(msg):
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


class Harness:
    """The kz_security_proxy process: stdout carries LISTENING and STATS
    lines, stderr the proxy's log (kept in a file for the report)."""

    def __init__(self, binary, args, logpath):
        self.logpath = logpath
        self.logf = open(logpath, "wb")
        self.p = spawn([binary] + args, stdout=subprocess.PIPE, stderr=self.logf)
        self.addr = None
        self.stats = []
        self.rc = None
        line = self._readline(20.0)
        if not line or not line.startswith("LISTENING "):
            self.stop()
            raise RuntimeError(f"harness did not start (see {logpath}): {line!r}")
        ip, port = line.split()[1].rsplit(":", 1)
        self.addr = (ip, int(port))

    def _readline(self, timeout):
        end = time.monotonic() + timeout
        buf = b""
        fd = self.p.stdout.fileno()
        while time.monotonic() < end:
            r, _, _ = select.select([fd], [], [], max(0.0, end - time.monotonic()))
            if not r:
                break
            ch = os.read(fd, 1)
            if not ch:
                break
            if ch == b"\n":
                return buf.decode(errors="replace")
            buf += ch
        return buf.decode(errors="replace") if buf else None

    def alive(self):
        return self.p.poll() is None

    def snapshot(self, timeout=5.0):
        """SIGUSR1 -> one STATS line; returns its JSON (None when dead)."""
        if not self.alive():
            return None
        self.p.send_signal(signal.SIGUSR1)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            line = self._readline(end - time.monotonic())
            if line is None:
                return None
            if line.startswith("STATS "):
                s = json.loads(line[6:])
                self.stats.append(s)
                return s
        return None

    def stop(self, timeout=30.0):
        """SIGTERM, wait; returns (exit status, final STATS or None).  A
        sanitizer report or a leak makes the status non-zero."""
        final = None
        if self.p.poll() is None:
            self.p.send_signal(signal.SIGTERM)
        try:
            out, _ = self.p.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, _ = self.p.communicate()
        for line in (out or b"").decode(errors="replace").splitlines():
            if line.startswith("STATS "):
                final = json.loads(line[6:])
        self.rc = self.p.returncode
        self.logf.close()
        return self.rc, final

    def log_lines(self, needle):
        with open(self.logpath, "rb") as f:
            return [l.decode(errors="replace").rstrip() for l in f if needle.encode() in l]


def sip_request(method, ruri, src_ip, src_port, frm, to, extra="", call_id=None, cseq=1):
    call_id = call_id or uuid.uuid4().hex
    branch = "z9hG4bK" + uuid.uuid4().hex[:16]
    return (f"{method} {ruri} SIP/2.0\r\n"
            f"Via: SIP/2.0/UDP {src_ip}:{src_port};branch={branch};rport\r\n"
            f"From: <{frm}>;tag={uuid.uuid4().hex[:8]}\r\n"
            f"To: <{to}>\r\n"
            f"Call-ID: {call_id}\r\n"
            f"CSeq: {cseq} {method}\r\n"
            f"Max-Forwards: 70\r\n{extra}"
            f"Content-Length: 0\r\n\r\n").encode()


def probe(target, src_ip, method="OPTIONS", timeout=2.0, user=None, domain="kz.test"):
    """Sends one request from src_ip (a fresh port) and returns the first
    final status code, or None on timeout.  OPTIONS goes to sip:DOMAIN
    (answered by the proxy itself: a bare-IP Request-URI would be dropped
    by the scanner filter); REGISTER for USER@DOMAIN expects a 401."""
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        s.bind((src_ip, 0))
        port = s.getsockname()[1]
        if method == "REGISTER":
            aor = f"sip:{user}@{domain}"
            msg = sip_request("REGISTER", f"sip:{domain}", src_ip, port, aor, aor,
                              extra=f"Contact: <sip:{user}@{src_ip}:{port}>\r\nExpires: 600\r\n")
        else:
            msg = sip_request("OPTIONS", f"sip:{domain}", src_ip, port, f"sip:probe@{domain}",
                              f"sip:{domain}")
        s.sendto(msg, target)
        end = time.monotonic() + timeout
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None
            s.settimeout(left)
            try:
                data = s.recv(65535)
            except socket.timeout:
                return None
            code = status_of(data)
            if code and code >= 200:
                return code
    finally:
        s.close()


def status_of(data):
    """Status code of a response datagram, None when it is not one."""
    if not data.startswith(b"SIP/2.0 ") or len(data) < 11 or not data[8:11].isdigit():
        return None
    return int(data[8:11])
