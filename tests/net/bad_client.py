#!/usr/bin/python3
"""Misbehaving clients for the veil server's robustness test (tests/cli/net_test.sh).

Each scenario speaks the wire format of docs/protocol.md by hand, does one wrong thing,
and checks the server's answer (an Error message with the expected code, or a closed
connection). Exit status 0 when the server behaved as documented.
"""
import os
import socket
import struct
import subprocess
import sys
import time

MAGIC, VERSION = b"VNET", 3  # net/frame.hpp kFrameVersion
PROTOCOL, PROTOCOL_VERSION = b"ni", 6  # protocol/ni/messages.hpp kName, kVersion
# Host messages (protocol/hello.hpp): HELLO, ERROR, BYE; the rest are the ni protocol's.
HELLO, SERVER_INFO, KEY_QUERY, KEY_STATUS, UPLOAD_KEYS, INFER, RESULT, ERROR, BYE = range(1, 10)
GALOIS_PIECE = 10
KEY_PIECE_BYTES = 32 << 20  # protocol/ni/messages.hpp kKeyPieceBytes
OBJECT_HEADER = 32  # rlwe/serialize.hpp: magic, version, type, flags, parameter id, body length, reserved
# Error codes: transport (net::ErrorCode) 1-5, host (protocol::ErrorCode) 6, 7, 11, 13,
# ni (protocol::ni::ErrorCode) 8-10.
BAD_FRAME, BAD_VERSION, TOO_LARGE, TIMEOUT = 1, 2, 3, 4
BAD_MESSAGE, BAD_KEYS, BAD_CTS, NO_KEYS, BUSY, UNAVAILABLE = 7, 8, 9, 10, 11, 13


def header(mtype, length, version=VERSION):
    return MAGIC + struct.pack("<HHQ", version, mtype, length)


def frame(mtype, payload=b""):
    return header(mtype, len(payload)) + payload


def blob(b):
    return struct.pack("<Q", len(b)) + b


def string(b):
    return struct.pack("<I", len(b)) + b


def hello(mode=0, protocol=PROTOCOL, version=PROTOCOL_VERSION):
    """Hello: str protocol, u16 version, str client name, blob body (ni: u8 mode)."""
    return frame(HELLO, string(protocol) + struct.pack("<H", version) + string(b"bad_client.py")
                 + blob(struct.pack("<B", mode)))


def galois_pieces(galois, params):
    """A serialised Galois key set cut at key boundaries into pieces of at most
    KEY_PIECE_BYTES (rlwe::galois_key_pieces). Each key: u32 element, level, digits, a
    32-byte seed, then per digit its b polynomial over the level's data primes and every
    special prime, each prime's residues packed in its bit length. `params`: params.bin."""
    if params is None:
        return [galois]
    log_n, _, _, nq, np_ = struct.unpack_from("<IIdII", params, OBJECT_HEADER)
    primes = struct.unpack_from("<%dQ" % (nq + np_), params, OBJECT_HEADER + 24)
    q, p = primes[:nq], primes[nq:]
    packed = lambda ps: sum(((1 << log_n) * x.bit_length() + 7) // 8 for x in ps)
    count, = struct.unpack_from("<I", galois, OBJECT_HEADER)
    cuts, begin, at = [], 0, OBJECT_HEADER + 4
    for _ in range(count):
        _, level, digits = struct.unpack_from("<III", galois, at)
        end = at + 12 + 32 + digits * packed(q[: level + 1] + p)
        if end - begin > KEY_PIECE_BYTES:
            cuts.append(galois[begin:at])
            begin = at
        at = end
    return cuts + [galois[begin:at]]


def upload_keys(relin, galois_bytes, pieces):
    """UploadKeys for a plan in one ring: the relinearisation key, no smaller ring's
    relinearisation or ring-switching key, the Galois set's length and piece count, and
    no smaller ring's set."""
    return frame(UPLOAD_KEYS, blob(relin) + blob(b"") + blob(b"") + struct.pack("<QIQI", galois_bytes, pieces, 0, 0))


def upload(relin, galois, params=None):
    """UploadKeys, then the Galois set's pieces."""
    pieces = galois_pieces(galois, params)
    return upload_keys(relin, len(galois), len(pieces)) + b"".join(frame(GALOIS_PIECE, blob(x)) for x in pieces)


def infer(cts, images=1):
    return frame(INFER, struct.pack("<II", images, len(cts)) + b"".join(blob(c) for c in cts))


def read_exact(s, n):
    out = b""
    while len(out) < n:
        chunk = s.recv(n - len(out))
        if not chunk:
            raise EOFError("connection closed after %d of %d bytes" % (len(out), n))
        out += chunk
    return out


def recv_frame(s):
    h = read_exact(s, 16)
    assert h[:4] == MAGIC, "bad magic from server"
    _, mtype, length = struct.unpack("<HHQ", h[4:])
    return mtype, read_exact(s, length)


def expect_error(s, code, what):
    mtype, payload = recv_frame(s)
    if mtype != ERROR:
        fail("%s: expected an Error, got message type %d" % (what, mtype))
    got, n = struct.unpack("<HI", payload[:6])
    text = payload[6:6 + n].decode()
    if got != code:
        fail("%s: expected error code %d, got %d (%s)" % (what, code, got, text))
    print("ok: %s -> error %d: %s" % (what, got, text))


def expect_closed(s, what):
    try:
        while s.recv(65536):
            pass
    except ConnectionResetError:
        pass
    print("ok: %s -> connection closed" % what)


def fail(msg):
    print("FAIL: " + msg)
    sys.exit(1)


def connect(addr):
    host, port = addr.rsplit(":", 1)
    s = socket.create_connection((host, int(port)), timeout=60)
    return s


def session(addr):
    """Connected, Hello sent, ServerInfo read."""
    s = connect(addr)
    s.sendall(hello())
    mtype, _ = recv_frame(s)
    if mtype != SERVER_INFO:
        fail("expected ServerInfo, got type %d" % mtype)
    return s


def read_bundle(path):
    """Ciphertexts of a VEILCTS1 file (veil encrypt)."""
    data = open(path, "rb").read()
    assert data[:8] == b"VEILCTS1"
    (count,) = struct.unpack("<I", data[8:12])
    cts, pos = [], 12
    for _ in range(count):
        (n,) = struct.unpack("<Q", data[pos:pos + 8])
        cts.append(data[pos + 8:pos + 8 + n])
        pos += 8 + n
    return cts


def keys_of(d):
    """upload()'s arguments for a key directory."""
    read = lambda f: open(os.path.join(d, f), "rb").read()
    return read("relin.key"), read("galois.key"), read("params.bin")


def hostile(addr, seconds):
    """Idle, trickling and oversized clients, from 127.0.0.2, .3 and .4, for `seconds`: the
    hostile half of the load test (docs/benchmarks.md). Each thread repeats its misdeed until
    the time is up; the outcomes (the server's error codes) are counted and printed."""
    import collections
    import threading
    host, port = addr.rsplit(":", 1)
    end = time.time() + seconds
    counts = collections.Counter()
    lock = threading.Lock()

    def count(key):
        with lock:
            counts[key] += 1

    def open_from(source):
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.bind((source, 0))
        s.settimeout(30)
        s.connect((host, int(port)))
        return s

    def outcome(s):
        try:
            mtype, payload = recv_frame(s)
            return "error %d" % struct.unpack("<H", payload[:2])[0] if mtype == ERROR else "type %d" % mtype
        except (EOFError, OSError):
            return "closed"

    def idle():  # connects and says nothing
        while time.time() < end:
            try:
                s = open_from("127.0.0.2")
                result = outcome(s)
                count("idle: " + result)
                s.close()
                if result == "error %d" % BUSY:
                    time.sleep(0.05)  # this machine's cores are the server's too
            except OSError:
                count("idle: connect failed")
                time.sleep(0.5)

    def trickle():  # a Hello, then a key upload at one byte every 4 s
        while time.time() < end:
            try:
                s = open_from("127.0.0.3")
                s.sendall(hello())
                mtype, payload = recv_frame(s)
                if mtype != SERVER_INFO:
                    count("trickle: refused, error %d" % struct.unpack("<H", payload[:2])[0])
                    s.close()
                    time.sleep(0.05)
                    continue
                s.sendall(header(UPLOAD_KEYS, 1 << 20))
                s.setblocking(False)
                while time.time() < end:
                    try:
                        if s.recv(1, socket.MSG_PEEK):
                            break
                    except BlockingIOError:
                        pass
                    s.send(b"\0")
                    time.sleep(4)
                s.setblocking(True)
                count("trickle: " + outcome(s))
                s.close()
            except (OSError, EOFError):
                count("trickle: connection reset")

    def oversized():  # declares 200 MiB of keys (a latency session's plan needs ~35 MiB)
        while time.time() < end:
            try:
                s = open_from("127.0.0.4")
                s.sendall(hello())
                mtype, payload = recv_frame(s)
                if mtype == SERVER_INFO:
                    s.sendall(header(UPLOAD_KEYS, 200 << 20) + b"\0" * 4096)
                    mtype, payload = recv_frame(s)
                count("oversized: " + ("error %d" % struct.unpack("<H", payload[:2])[0] if mtype == ERROR else
                                      "type %d" % mtype))
                s.close()
            except (OSError, EOFError):
                count("oversized: connection reset")
            time.sleep(0.1)

    threads = [threading.Thread(target=f) for f in [idle] * 6 + [trickle] * 6 + [oversized] * 2]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for k in sorted(counts):
        print("hostile %s: %d" % (k, counts[k]))


def main():
    scenario, addr, args = sys.argv[1], sys.argv[2], sys.argv[3:]
    if scenario == "hostile":
        hostile(addr, float(args[0]))
    elif scenario == "oversized":
        s = connect(addr)
        s.sendall(header(HELLO, 1 << 40))
        expect_error(s, TOO_LARGE, "frame declaring 1 TiB")
    elif scenario == "version":
        s = connect(addr)
        s.sendall(header(HELLO, 0, version=99))
        expect_error(s, BAD_VERSION, "protocol version 99")
    elif scenario == "hello":  # a hello the server cannot serve: each answered, then closed
        for what, msg, code in [("unknown protocol", hello(protocol=b"nope"), UNAVAILABLE),
                                ("ni version 3", hello(version=3), BAD_VERSION),
                                ("unknown mode", hello(mode=7), BAD_MESSAGE),
                                ("hello frame of 1 MiB", header(HELLO, 1 << 20), TOO_LARGE)]:
            s = connect(addr)
            s.sendall(msg)
            expect_error(s, code, what)
            expect_closed(s, what)
    elif scenario == "garbage":
        s = connect(addr)
        s.sendall(bytes(range(7, 71)))
        expect_error(s, BAD_FRAME, "64 garbage bytes")
    elif scenario == "truncated":
        s = session(addr)
        s.sendall(header(UPLOAD_KEYS, 100) + b"x" * 10)
        s.close()
        print("ok: truncated frame, then disconnect")
    elif scenario == "bad-messages":
        s = session(addr)
        s.sendall(frame(UPLOAD_KEYS, b"\x05" * 12))
        expect_error(s, BAD_MESSAGE, "UploadKeys with a lying length")
        s.sendall(upload(b"not a key" * 10, b"nor this"))
        expect_error(s, BAD_KEYS, "UploadKeys with garbage keys")  # its piece dropped unanswered
        s.sendall(frame(GALOIS_PIECE, blob(b"stray")))
        expect_error(s, 6, "a GaloisKeysPiece without an UploadKeys")
        s.sendall(upload_keys(b"still not a key", 100, 2))
        expect_error(s, BAD_KEYS, "UploadKeys announcing two pieces, with garbage keys")
        s.sendall(infer([b"x" * 100]))
        expect_error(s, 6, "Infer in the middle of a key upload")
        s.sendall(infer([b"x" * 100]))
        expect_error(s, NO_KEYS, "Infer before any keys")
        s.sendall(frame(RESULT, b""))
        expect_error(s, 6, "a Result sent by a client")
        s.sendall(frame(BYE))
        expect_closed(s, "Bye")
    elif scenario == "mismatched-keys":  # args: key dir made for other parameters
        s = session(addr)
        s.sendall(upload(*keys_of(args[0])))
        expect_error(s, BAD_KEYS, "keys for other parameters")
        s.sendall(frame(BYE))
    elif scenario == "bad-ciphertexts":  # args: good key dir, good.ct, other-params.ct
        s = session(addr)
        s.sendall(upload(*keys_of(args[0])))
        mtype, _ = recv_frame(s)
        assert mtype == KEY_STATUS, mtype
        good, other = read_bundle(args[1]), read_bundle(args[2])
        s.sendall(infer(other))
        expect_error(s, BAD_CTS, "ciphertext for other parameters")
        s.sendall(infer(good + good))
        expect_error(s, BAD_CTS, "two ciphertexts where the model takes one")
        s.sendall(infer([good[0][:len(good[0]) // 2]]))
        expect_error(s, BAD_CTS, "truncated ciphertext")
        s.sendall(infer(good, images=5))
        expect_error(s, BAD_CTS, "5 images in a latency request")
        s.sendall(infer(good))
        mtype, _ = recv_frame(s)
        if mtype != RESULT:
            fail("a good request after bad ones got type %d" % mtype)
        print("ok: the same session still answers a good request")
        s.sendall(frame(BYE))
    elif scenario == "stall":  # args: seconds to stall
        s = session(addr)
        s.sendall(header(UPLOAD_KEYS, 1000) + b"x" * 10)
        time.sleep(float(args[0]))
        expect_error(s, TIMEOUT, "client stalled mid-frame")
        expect_closed(s, "after the timeout")
    elif scenario == "disconnect":  # args: good key dir, good.ct
        keys = keys_of(args[0])
        good = read_bundle(args[1])
        s = session(addr)
        s.sendall(upload(*keys))
        recv_frame(s)
        req = infer(good)
        s.sendall(req[: len(req) // 2])
        s.close()
        print("ok: disconnect in the middle of a request")
        s = session(addr)
        s.sendall(upload(*keys))
        recv_frame(s)
        s.sendall(req)
        s.close()
        print("ok: disconnect while the request is evaluated")
        time.sleep(1.0)  # let the evaluation finish and the reply fail
    elif scenario == "cap":  # args: sessions to hold, then a command that must be told "busy"
        n, cmd = int(args[0]), args[1:]
        held = [session(addr) for _ in range(n)]
        s = connect(addr)
        s.sendall(hello())
        expect_error(s, BUSY, "connection %d with --max-sessions %d" % (n + 1, n))
        r = subprocess.run(cmd, capture_output=True, text=True)
        if r.returncode != 1 or "veil: error: server busy: 4 sessions" not in r.stderr:
            fail("veil client past the session cap: exit %d, %s" % (r.returncode, r.stderr.strip()))
        print("ok: veil client told: " + r.stderr.strip())
        for h in held:
            h.sendall(frame(BYE))
            h.close()
        time.sleep(0.3)
    else:
        fail("unknown scenario " + scenario)


if __name__ == "__main__":
    main()
