"""DeskPBX's headless SIP user agent: the softphone core the GUI and the tests share.

    ua = UserAgent(Account("1001", "secret", "127.0.0.1", 5060), ("127.0.0.1", 0),
                   on_event=print, rtp_ports=(30000, 30999))
    await ua.start()
    await ua.register(expires=300)          # digest auth, refreshed before expiry
    call = await ua.call("1002")            # or "sip:bob@example.com", "tel:+1555..."
    await call.wait_for(CallState.CONNECTED)
    call.set_source(ToneSource(440.0)); call.set_sink(WavRecorder("heard.wav"))
    await call.hold(); await call.resume(); call.mute(True)
    await call.send_dtmf("123#")            # RFC 4733, or INFO when not agreed
    await call.transfer("1003")             # blind REFER; attended_transfer(other_call)
    await call.hangup(); await ua.aclose()  # aclose hangs up and unregisters

Everything runs on the loop that called `start()`; the one `on_event`
callable gets frozen events (pbx.ua.events): RegistrationChanged,
IncomingCall (then `await call.answer()` / `await call.reject(486)`),
OutgoingCall, CallStateChanged (Blink's states: dialing, ringing,
early_media, connected, on_hold, ending, ended), HoldChanged (local/remote),
DtmfReceived, TransferProgress, TransferRequested. Verbs that cannot apply
raise UaError with a plain message. `ua.calls` lists the live calls,
`ua.active_call` the one not on hold (placing, answering or resuming a call
holds the others when `auto_hold`). `call.quality()` gives packets, loss,
jitter, RTCP round trip and an estimated MOS.

Audio (pbx.ua.audio): each call has an `AudioPort` whose `source` gives
8 kHz int16 frames of 160 samples (callable or iterator; silence when dry)
and whose `sink` gets one decoded frame per 20 ms after the jitter buffer.
`WavSource` plays a WAV file (resampled to 8 kHz mono), `WavRecorder` and
`FrameRecorder` keep what is heard, `TeeSink` feeds several sinks.

Modules: events (Account, states, events), agent (UserAgent), call (Call),
client (client transactions, digest retries), register (REGISTER, refresh,
NAT contact), session (SDP offer/answer), media (RTP, jitter buffer, DTMF,
RTCP), audio (audio port, sources, sinks, WAV), transfer (REFER/NOTIFY).
No Qt here.
"""

from pbx.ua.agent import UserAgent
from pbx.ua.audio import (
    AudioPort,
    FrameRecorder,
    TeeSink,
    ToneSource,
    WavRecorder,
    WavSource,
    dominant_frequency,
    read_wav,
)
from pbx.ua.call import Call
from pbx.ua.events import (
    Account,
    CallState,
    CallStateChanged,
    DtmfReceived,
    HoldChanged,
    IncomingCall,
    OutgoingCall,
    RegistrationChanged,
    RegistrationState,
    TransferProgress,
    TransferRequested,
    UaError,
    UaEvent,
)

__all__ = [
    "Account",
    "AudioPort",
    "Call",
    "CallState",
    "CallStateChanged",
    "DtmfReceived",
    "FrameRecorder",
    "HoldChanged",
    "IncomingCall",
    "OutgoingCall",
    "RegistrationChanged",
    "RegistrationState",
    "TeeSink",
    "ToneSource",
    "TransferProgress",
    "TransferRequested",
    "UaError",
    "UaEvent",
    "UserAgent",
    "WavRecorder",
    "WavSource",
    "dominant_frequency",
    "read_wav",
]
