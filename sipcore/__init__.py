"""sipcore: our own SIP stack (RFC 3261 and friends), sans-IO at the core.

Bytes, events and ``now`` go in; bytes, events and the next deadline come out. Only the asyncio
transports touch sockets. Shared by ctiserver, ivr-engine and the recorder (docs/sip.md says what
we support).
"""
