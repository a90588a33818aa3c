"""A partner's mail server for teiten's e-mail delivery tests: aiosmtpd (PyPI) on 127.0.0.1,
STARTTLS required before anything else and AUTH (PLAIN/LOGIN) required over TLS, as a real
submission server is set up. Each accepted message is written, exactly as received, to
MAILDIR/<n>.eml with MAILDIR/<n>.rcpt (one recipient a line); the first FAIL messages are
answered 451 (a temporary failure the sender must retry).

    smtp_server.py PORT CERT KEY USER PASSWORD MAILDIR [FAIL]

Prints "ready" on standard output once it listens, then serves until killed.
"""
import os
import ssl
import sys
import threading

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

PORT, CERT, KEY, USER, PASSWORD, MAILDIR = sys.argv[1:7]
FAIL = int(sys.argv[7]) if len(sys.argv) > 7 else 0


class Auth:
    def __call__(self, server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login.decode() == USER
            and auth_data.password.decode() == PASSWORD
        )
        return AuthResult(success=ok)


class Handler:
    def __init__(self):
        self.lock = threading.Lock()
        self.seen = 0
        self.stored = 0

    async def handle_DATA(self, server, session, envelope):
        with self.lock:
            self.seen += 1
            if self.seen <= FAIL:
                return "451 4.3.0 Temporary failure, try again later"
            self.stored += 1
            n = self.stored
        base = os.path.join(MAILDIR, str(n))
        with open(base + ".rcpt.tmp", "w") as f:
            f.write("\n".join(envelope.rcpt_tos) + "\n")
        with open(base + ".eml.tmp", "wb") as f:
            f.write(envelope.original_content)
        os.rename(base + ".rcpt.tmp", base + ".rcpt")
        os.rename(base + ".eml.tmp", base + ".eml")
        return "250 2.0.0 OK: queued"


ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
ctx.load_cert_chain(CERT, KEY)
controller = Controller(
    Handler(),
    hostname="127.0.0.1",
    port=int(PORT),
    tls_context=ctx,
    require_starttls=True,
    authenticator=Auth(),
    auth_require_tls=True,
    data_size_limit=64 << 20,
)
controller.start()
print("ready", flush=True)
threading.Event().wait()
