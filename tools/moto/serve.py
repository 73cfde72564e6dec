"""moto in server mode for `make test-moto`, as `moto_server` runs it, with one
change: DynamoDB and DynamoDB Streams requests are served one at a time.

moto's TransactWriteItems is not safe under concurrent requests: a transaction
that fails restores a deep copy of the whole table taken before it began
(moto/dynamodb/models/__init__.py, transact_write_items), which erases what
other threads committed meanwhile, and the copy itself can fail with
"dictionary changed size during iteration" (an HTML 500). AWS serialises
conflicting transactions itself; DynamoDB Local serves them one at a time.
Serialising them here tests Dispatcher's concurrency, not moto's races
(docs/local.md, "moto"). SQS and SES v2 stay threaded, so a long poll does
not hold up the rest.

Usage: serve.py -H 127.0.0.1 -p PORT
"""

import argparse
import os
import signal
import sys
import threading

from werkzeug.serving import run_simple

from moto.moto_server.werkzeug_app import (
    DomainDispatcherApplication,
    MotoRequestHandler,
    create_backend_app,
)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("-H", "--host", default="127.0.0.1")
    parser.add_argument("-p", "--port", type=int, required=True)
    args = parser.parse_args()
    os.environ.setdefault("MOTO_PORT", str(args.port))
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))

    moto = DomainDispatcherApplication(create_backend_app)
    dynamodb = threading.Lock()

    def app(environ, start_response):
        if environ.get("HTTP_X_AMZ_TARGET", "").startswith("DynamoDB"):
            with dynamodb:
                # Consume the response inside the lock: the WSGI body may
                # be lazy.
                return list(moto(environ, start_response))
        return moto(environ, start_response)

    run_simple(args.host, args.port, app, threaded=True, request_handler=MotoRequestHandler)


if __name__ == "__main__":
    main()
