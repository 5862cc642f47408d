"""A real SMTP server for the tests (aiosmtpd): every accepted message is
written to a Maildir with an X-Rcpt-To header naming its envelope recipients.
Recipients starting with "reject" get 550, those starting with "defer" 451.

    python smtp_server.py PORT MAILDIR
Prints "ready" once it listens; stops when standard input closes.
"""
import mailbox
import sys

from aiosmtpd.controller import Controller


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
        rcpt = ", ".join(envelope.rcpt_tos).encode()
        self.maildir.add(b"X-Rcpt-To: " + rcpt + b"\r\n" + envelope.original_content)
        return "250 Message accepted for delivery"


def main():
    port, path = int(sys.argv[1]), sys.argv[2]
    controller = Controller(Handler(path), hostname="127.0.0.1", port=port)
    controller.start()
    print("ready", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
