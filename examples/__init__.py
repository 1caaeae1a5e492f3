"""Example applications written with the official Restate Python SDK (PyPI ``restate-sdk``).

They run unchanged on restate-server and on rstq:

* :mod:`examples.greeter`: ``Greeter``, a virtual object counting greetings per name.
* :mod:`examples.tickets`: ``TicketObject`` and ``CartObject``, a ticket reservation cart with
  a durable 15-minute reservation timeout.
* :mod:`examples.payment`: ``Payment`` and ``PaymentProvider``, a payment with an idempotent
  side effect and an awakeable completed by an (simulated) external confirmation.
* :mod:`examples.app`: the ASGI app hosting all of them (``hypercorn examples.app:app``).

``make run`` (:mod:`examples.run`) starts an rstq server, serves the app, registers it and prints
curl lines to try.
"""
