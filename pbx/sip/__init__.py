"""Sans-IO SIP: parsing, transactions, dialogs, digest auth and SDP.

Nothing here opens a socket, imports asyncio or reads the clock: callers feed
bytes and the current time (monotonic seconds) and get back messages to send
and timers to arm.
"""
