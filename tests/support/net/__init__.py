"""Network helpers between a server and its peers: a faulty TCP proxy, the ASGI wire tap and
an OTLP trace receiver."""
