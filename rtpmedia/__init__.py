"""rtpmedia: RTP/RTCP, G.711, RFC 4733 telephone-events and in-band DTMF detection — sans-IO.

Used by the IVR engine (issue 5) and the recorder. Packets and samples in, packets, samples,
events and the next deadline out; only the daemons' adapters touch sockets and clocks.
"""
