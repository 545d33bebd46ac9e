"""Media: RTP/RTCP, G.711, jitter buffer, relay, recorder, tones, DTMF. No Qt."""
