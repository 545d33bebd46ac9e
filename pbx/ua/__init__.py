"""DeskPBX's headless SIP user agent: the softphone core the GUI and the tests share.

    ua = UserAgent(Account("1001", "secret", "127.0.0.1", 5060), on_event=print)
    await ua.start()
    await ua.register(expires=300)
    call = await ua.call("1002")
    await call.wait_for(CallState.CONNECTED)
    call.set_source(ToneSource(440.0)); call.set_sink(WavRecorder("heard.wav"))
    await call.hold(); await call.resume(); await call.send_dtmf("123#")
    await call.hangup(); await ua.aclose()

Modules: events (Account, states, events), agent (UserAgent), call (Call),
register (REGISTER and refresh), session (SDP offer/answer), media (RTP,
jitter buffer, DTMF), audio (audio port, sources, sinks, WAV). No Qt here.
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
