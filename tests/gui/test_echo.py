"""Echo cancellation (libspeexdsp): the echo goes, the near end's voice stays."""

from __future__ import annotations

import numpy as np
import pytest

from app.echo import FRAME, EchoCanceller, erle_db, synthetic_echo_erle

pytestmark = pytest.mark.skipif(
    not EchoCanceller.available(), reason="libspeexdsp not installed (Debian: libspeexdsp1)"
)


def test_echo_return_loss_enhancement_on_a_synthetic_room() -> None:
    erle, near_loss = synthetic_echo_erle()
    assert erle >= 25.0  # the goal
    assert near_loss < 3.0  # double talk: the near end is not cancelled with the echo


def test_without_far_end_audio_the_microphone_passes() -> None:
    canceller = EchoCanceller(denoise=False)
    t = np.arange(FRAME * 100) / 8000
    voice = (4000 * np.sin(2 * np.pi * 500 * t)).astype(np.int16)
    silence = np.zeros(FRAME, dtype=np.int16)
    out = []
    for start in range(0, voice.size, FRAME):
        canceller.playback(silence)
        out.append(canceller.capture(voice[start : start + FRAME]))
    canceller.close()
    assert abs(erle_db(voice, np.concatenate(out))) < 1.0


def test_erle_figures() -> None:
    assert erle_db(np.full(10, 1000), np.full(10, 10)) == pytest.approx(40.0)
    assert erle_db(np.full(10, 1000), np.zeros(10)) == pytest.approx(150.0)  # capped, finite
