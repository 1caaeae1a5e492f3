"""Example applications written with ``rstq.sdk``, our pure-Python SDK.

``rstq.sdk`` mirrors the official Restate Python SDK (PyPI ``restate-sdk``): these modules import
it as ``restate``, and switching back to the official SDK is changing that one import. They run
unchanged on restate-server and on rstq (tests/examples checks both):

* :mod:`examples.greeter`: ``Greeter``, a virtual object counting greetings per name.
* :mod:`examples.tickets`: ``TicketObject`` and ``CartObject``, a ticket reservation cart with
  a durable 15-minute reservation timeout.
* :mod:`examples.payment`: ``Payment`` and ``PaymentProvider``, a payment with an idempotent
  side effect and an awakeable completed by an (simulated) external confirmation.
* :mod:`examples.app`: the ASGI app hosting all of them (``hypercorn examples.app:app``).

``make run`` (:mod:`examples.run`) starts an rstq server, serves the app, registers it and prints
curl lines to try.
"""
