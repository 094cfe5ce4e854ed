"""A minimal HTTP/2 client over a raw socket for the end-to-end tests of
misbehaving clients (a zero flow-control window, frames the standard
libraries will not send): frames, literal HPACK headers, a reader that
acknowledges SETTINGS."""
import socket, struct

DATA, HEADERS, RST_STREAM, SETTINGS, PING, GOAWAY, WINDOW_UPDATE = 0, 1, 3, 4, 6, 7, 8
END_STREAM, ACK, END_HEADERS = 1, 1, 4
SETTINGS_INITIAL_WINDOW_SIZE = 4


def frame(ftype, flags, stream, payload=b""):
    return struct.pack(">I", len(payload))[1:] + bytes([ftype, flags]) + struct.pack(">I", stream) + payload


def _len7(n):
    if n < 127:
        return bytes([n])
    out, n = [127], n - 127
    while n >= 128:
        out.append((n & 127) | 128)
        n >>= 7
    out.append(n)
    return bytes(out)


def hpack(headers):
    """Literal header fields without indexing, new names: no table state."""
    out = b""
    for k, v in headers:
        k, v = k.encode(), v.encode()
        out += b"\x00" + _len7(len(k)) + k + _len7(len(v)) + v
    return out


class H2:
    def __init__(self, host, port, settings=(), timeout=10):
        self.s = socket.create_connection((host, port), timeout=timeout)
        payload = b"".join(struct.pack(">HI", k, v) for k, v in settings)
        self.s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + frame(SETTINGS, 0, 0, payload))
        self.buf = b""

    def request(self, stream, headers, body=None):
        self.s.sendall(frame(HEADERS, END_HEADERS | (0 if body is not None else END_STREAM), stream,
                             hpack(headers)))
        if body is not None:
            self.s.sendall(frame(DATA, END_STREAM, stream, body))

    def read_frame(self):
        """The next frame as (type, flags, stream, payload); None at the end
        of the connection (EOF or reset); "timeout" when nothing came within
        the socket's timeout. SETTINGS are acknowledged."""
        try:
            while True:
                if len(self.buf) >= 9:
                    n = int.from_bytes(self.buf[:3], "big")
                    if len(self.buf) >= 9 + n:
                        t, f = self.buf[3], self.buf[4]
                        sid = int.from_bytes(self.buf[5:9], "big") & 0x7FFFFFFF
                        p, self.buf = self.buf[9:9 + n], self.buf[9 + n:]
                        if t == SETTINGS and not f & ACK:
                            self.s.sendall(frame(SETTINGS, ACK, 0))
                        return t, f, sid, p
                chunk = self.s.recv(65536)
                if not chunk:
                    return None
                self.buf += chunk
        except (ConnectionResetError, BrokenPipeError):
            return None
        except socket.timeout:
            return "timeout"

    def close(self):
        self.s.close()
