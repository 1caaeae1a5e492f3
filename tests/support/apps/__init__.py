"""Service apps and endpoints that tests use as subjects: restate-sdk and rstq.sdk services,
and fake or misbehaving endpoints (served by tests/support/harness, mostly under hypercorn)."""
