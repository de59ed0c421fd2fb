#!/usr/bin/env python3
"""A real SMTP server on loopback for the email tests (aiosmtpd).

Usage: smtp_sink.py OUTDIR [--tls none|starttls|tls] [--cert PEM --key PEM] [--auth USER:PASSWORD]

Binds 127.0.0.1 on a port the OS picks and prints that port on one line. Every message received
is written to OUTDIR as `<n>.json` (envelope sender, recipients, the authenticated login and the
raw message), atomically (written to a temporary name, then renamed). Exits when stdin closes,
so it never outlives the test that started it.
"""

import argparse
import asyncio
import logging
import warnings
import json
import os
import ssl
import sys
import threading

from aiosmtpd.smtp import SMTP, AuthResult


class Sink:
    def __init__(self, outdir):
        self.outdir = outdir
        self.count = 0

    async def handle_DATA(self, server, session, envelope):
        self.count += 1
        record = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "login": session.auth_data if session.authenticated else None,
            "tls": session.ssl is not None
            or server.transport.get_extra_info("ssl_object") is not None,
            "content": envelope.content.decode("utf-8", "replace"),
        }
        tmp = os.path.join(self.outdir, f".{self.count}.json.tmp")
        with open(tmp, "w") as f:
            json.dump(record, f)
        os.rename(tmp, os.path.join(self.outdir, f"{self.count}.json"))
        return "250 OK"


def main():
    # Login over plain text is what the "none" tests exercise on loopback; no need to warn.
    warnings.simplefilter("ignore")
    # Failed handshakes and logins are what some tests are about; keep stderr for real trouble.
    logging.getLogger("mail.log").disabled = True
    p = argparse.ArgumentParser()
    p.add_argument("outdir")
    p.add_argument("--tls", default="none", choices=["none", "starttls", "tls"])
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--auth")
    args = p.parse_args()

    context = None
    if args.tls != "none":
        context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        context.load_cert_chain(args.cert, args.key)

    user, password = (args.auth.split(":", 1) if args.auth else (None, None))

    def authenticator(server, session, envelope, mechanism, auth_data):
        ok = (
            user is not None
            and auth_data.login.decode() == user
            and auth_data.password.decode() == password
        )
        return AuthResult(success=ok, handled=False, auth_data=auth_data.login.decode())

    sink = Sink(args.outdir)

    def factory():
        return SMTP(
            sink,
            hostname="sink.test",
            tls_context=context if args.tls == "starttls" else None,
            require_starttls=args.tls == "starttls",
            authenticator=authenticator if user is not None else None,
            auth_required=user is not None,
            auth_require_tls=False,
        )

    async def serve():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(
            factory, "127.0.0.1", 0, ssl=context if args.tls == "tls" else None
        )
        print(server.sockets[0].getsockname()[1], flush=True)
        done = asyncio.Event()

        def watch_stdin():
            sys.stdin.read()
            loop.call_soon_threadsafe(done.set)

        threading.Thread(target=watch_stdin, daemon=True).start()
        await done.wait()
        server.close()

    asyncio.run(serve())


if __name__ == "__main__":
    main()
