"""``bench/gateway.py --rounds``: a cell is the median of its rounds, counts summed."""

from __future__ import annotations

from types import ModuleType

from tests.bench_module import load_bench


def _report() -> ModuleType:
    return load_bench("gateway_report")


def _row(
    rps: float, p50: float, ok: int, kinds: dict[str, int], ttfc: float | None = None
) -> dict[str, object]:
    return {
        "label": "thinkserve",
        "api": "chat",
        "stream": False,
        "concurrency": 8,
        "ok": ok,
        "errors": sum(kinds.values()),
        "error_kinds": kinds,
        "rps": rps,
        "p50_ms": p50,
        "gw_cpu": 0.5,
        "ttfc_p50_ms": ttfc,
    }


def test_a_cell_is_the_median_of_its_rounds() -> None:
    rows = [
        _row(100.0, 3.0, 10, {}),
        _row(300.0, 1.0, 30, {"status 500": 2}, 4.0),
        _row(200.0, 2.0, 20, {"status 500": 1}),
    ]
    cell = _report().median_row(rows)
    assert (cell["rps"], cell["p50_ms"], cell["gw_cpu"]) == (200.0, 2.0, 0.5)
    assert (cell["ok"], cell["errors"], cell["error_kinds"]) == (60, 3, {"status 500": 3})
    assert cell["ttfc_p50_ms"] == 4.0  # the rounds that have it
    assert (cell["label"], cell["stream"], cell["concurrency"], cell["rounds"]) == ("thinkserve", False, 8, 3)
