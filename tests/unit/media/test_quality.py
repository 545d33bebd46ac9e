"""Estimated MOS (simplified G.107 E-model): anchor values and monotonic in loss, jitter, delay."""

from __future__ import annotations

import pytest

from pbx.media.quality import (
    G711,
    G711_PLC,
    delay_impairment,
    effective_equipment_impairment,
    estimate_mos,
    mos_from_r,
    one_way_delay,
    r_factor,
)


def test_default_connection_rates_93_2() -> None:
    # G.107 §7.7: all defaults and no delay give R = 93.2
    assert r_factor(0.0, 0.0) == pytest.approx(93.2, abs=0.05)
    assert mos_from_r(93.2) == pytest.approx(4.41, abs=0.01)


def test_perfect_conditions_mos_is_about_4_4() -> None:
    assert estimate_mos(0.0, 0.0, 0.0) == pytest.approx(4.38, abs=0.03)
    assert estimate_mos(0.0, 0.0, None) == estimate_mos(0.0, 0.0, 0.0)


def test_mos_from_r_annex_b_points() -> None:
    assert mos_from_r(-5) == 1.0
    assert mos_from_r(0) == 1.0
    assert mos_from_r(100) == 4.5
    assert mos_from_r(120) == 4.5
    assert mos_from_r(50) == pytest.approx(1 + 1.75 + 50 * -10 * 50 * 7e-6)
    assert mos_from_r(80) == pytest.approx(1 + 2.8 + 80 * 20 * 20 * 7e-6)  # 4.024


def test_delay_impairment_follows_the_g107_curve() -> None:
    # default-parameter R against mouth-to-ear delay (G.107 figure: ~86 at 200 ms, ~62 at 400 ms)
    assert 93.2 - delay_impairment(0.200) == pytest.approx(85.8, abs=0.5)
    assert 93.36 - delay_impairment(0.400) == pytest.approx(62.2, abs=0.5)
    assert delay_impairment(0.100) < 3.0


def test_g113_loss_impairment() -> None:
    assert effective_equipment_impairment(0.0) == 0.0
    # Ppl = 1 %: 95 * 1 / (1 + 4.3) without PLC, 95 * 1 / (1 + 25.1) with PLC
    assert effective_equipment_impairment(0.01, G711) == pytest.approx(95 / 5.3)
    assert effective_equipment_impairment(0.01, G711_PLC) == pytest.approx(95 / 26.1)
    assert effective_equipment_impairment(1.0, G711_PLC) == pytest.approx(95 * 100 / 125.1)
    # bursty loss hurts more than random loss at the same rate
    assert effective_equipment_impairment(0.05, G711_PLC, burst=2.0) > (
        effective_equipment_impairment(0.05, G711_PLC)
    )


def test_one_way_delay_parts() -> None:
    assert one_way_delay(0.100, 0.0) == pytest.approx(0.050 + 0.020 + 0.020)
    assert one_way_delay(None, 0.030) == pytest.approx(0.060 + 0.020)


def test_mos_decreases_strictly_with_loss() -> None:
    figures = [estimate_mos(loss / 100, 0.005, 0.040) for loss in range(0, 30)]
    assert all(b < a for a, b in zip(figures, figures[1:], strict=False))
    assert figures[1] < 4.35 and figures[5] < 3.95


def test_mos_decreases_strictly_with_jitter() -> None:
    figures = [estimate_mos(0.0, ms / 1000, 0.040) for ms in range(10, 300, 10)]
    assert all(b < a for a, b in zip(figures, figures[1:], strict=False))
    assert figures[-1] < 3.0


def test_mos_decreases_strictly_with_rtt() -> None:
    figures = [estimate_mos(0.0, 0.0, ms / 1000) for ms in range(0, 1200, 20)]
    assert all(b < a for a, b in zip(figures, figures[1:], strict=False))
    assert figures[-1] < 2.5


def test_plc_rates_loss_better_than_no_plc() -> None:
    assert estimate_mos(0.03, 0.0, 0.0, G711_PLC) > estimate_mos(0.03, 0.0, 0.0, G711) + 0.5
