"""A real SMTP server for the tests (aiosmtpd): every accepted message is
written to a Maildir with an X-Rcpt-To header naming its envelope recipients.
Recipients starting with "reject" get 550, those starting with "defer" 451.

    python smtp_server.py PORT MAILDIR [starttls|implicit CERT KEY] [USER:PASSWORD]
With USER:PASSWORD, AUTH is required. Prints "ready" once it listens; stops when standard input closes.
"""
import asyncio
import mailbox
import os
import ssl
import sys

# A slow server (TICKETD_TEST_SMTP_DELAY_MS per message), so that a test can
# kill its client while messages are in flight.
DELAY = int(os.environ.get("TICKETD_TEST_SMTP_DELAY_MS", "0")) / 1000

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult


class Handler:
    def __init__(self, path):
        self.maildir = mailbox.Maildir(path, create=True)

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("reject"):
            return "550 5.1.1 No such user here"
        if address.startswith("defer"):
            return "451 4.3.0 Try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if DELAY:
            await asyncio.sleep(DELAY)
        rcpt = ", ".join(envelope.rcpt_tos).encode()
        self.maildir.add(b"X-Rcpt-To: " + rcpt + b"\r\n" + envelope.original_content)
        return "250 Message accepted for delivery"


def main():
    port, path, rest = int(sys.argv[1]), sys.argv[2], sys.argv[3:]
    options = {}
    if rest and rest[0] in ("starttls", "implicit"):
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(rest[1], rest[2])
        if rest[0] == "starttls":
            options.update(tls_context=context, require_starttls=True)
        else:
            # aiosmtpd does not see TLS it did not negotiate itself (STARTTLS);
            # the connection is TLS from the first byte, so AUTH may be offered.
            options.update(ssl_context=context, auth_require_tls=False)
        rest = rest[3:]
    if rest:
        user, password = rest[0].split(":", 1)

        def check(server, session, envelope, mechanism, auth_data):
            ok = auth_data.login.decode() == user and auth_data.password.decode() == password
            return AuthResult(success=ok)

        options.update(authenticator=check, auth_required=True)
    controller = Controller(Handler(path), hostname="localhost" if "ssl_context" in options else "127.0.0.1", port=port, **options)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
