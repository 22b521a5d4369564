"""RCS over Google's RCS Business Messaging (RBM) API.

- :mod:`.settings`: :class:`RbmSettings`, one agent's endpoint and credentials.
- :mod:`.auth`: OAuth 2.0 service-account access tokens (a signed JWT exchanged at the token URI).
- :mod:`.content`: the partner's RCS request turned into an RBM ``AgentMessage``; message ids.
- :mod:`.events`: webhook bodies (the setup handshake, signed Pub/Sub-format events) and the event
  table that maps RBM events to our statuses.
- :mod:`.provider`: :class:`RbmProvider`, the channel's implementation of the provider contract.
"""
