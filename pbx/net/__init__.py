"""The asyncio shell around the sans-IO SIP core: UDP/TCP endpoints and timers."""
