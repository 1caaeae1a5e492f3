"""The ASGI application hosting every example service.

Serve it with hypercorn (HTTP/1.1 and h2c on the same port; restate-server and rstq talk h2c,
i.e. BIDI streaming mode, unless the deployment is registered with ``"use_http_11": true``)::

    hypercorn --bind 127.0.0.1:9080 examples.app:app

then register it: ``curl -X POST http://127.0.0.1:9070/deployments --json '{"uri":
"http://127.0.0.1:9080"}'`` (``make run`` does all of this, see examples/run.py).
"""

from __future__ import annotations

import logging

import rstq.sdk as restate

from examples.greeter import greeter
from examples.payment import payment, payment_provider
from examples.tickets import cart_object, ticket_object

# Show the handlers' INFO logs (restate.getLogger("examples....")) on stderr. hypercorn only
# configures its own loggers (which also propagate to the root logger: configuring the root would
# print their lines twice).
_handler = logging.StreamHandler()
_handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
_examples_logger = logging.getLogger("examples")
_examples_logger.setLevel(logging.INFO)
_examples_logger.addHandler(_handler)

SERVICES: list[restate.Service | restate.VirtualObject | restate.Workflow] = [
    greeter, ticket_object, cart_object, payment, payment_provider,
]

app = restate.app(SERVICES)
