import re

import pytest

from shared.core import naming

DNS = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@pytest.mark.parametrize("symbol, type_, time_range, expected", [
    ("BTCUSDT", "api_candles_5m", "2024-06-01:2024-06-30", "btc_candles_5m_2024_06"),
    ("BTCUSDT", "api_trades", "2024-06-01:2024-06-30", "btc_trades_2024_06"),
    ("BTCUSDT", "ws_candles_1m", "2024-08-01:2024-08-01", "btc_ws_candles_1m_2024_08_01"),
    ("BTCUSDT", "ws_trades", "2024-08-01:2024-08-01", "btc_ws_trades_2024_08_01"),
    ("ETHBTC", "api_trades", "2024-02-01:2024-02-29", "eth_trades_2024_02"),
    ("BTCUSDT", "api_trades", "2024-06-01:2024-06-29", "btc_trades_2024_06_01_2024_06_29"),
])
def test_dataset_names_match_the_seed_examples(symbol, type_, time_range, expected):
    assert naming.dataset_name(symbol, type_, time_range) == expected


def test_job_names_are_dns_labels_unique_and_deterministic():
    queue = "b927fa13-3b22-4d44-bc81-1f902a222eee"
    names = {naming.job_name(queue, i, "arango-connector", "x" * 80 + str(i)) for i in range(20)}
    assert len(names) == 20
    assert all(len(n) <= 63 and DNS.match(n) for n in names)
    same = naming.job_name(queue, 3, "gnn-trainer", "gnn_train")
    assert same == naming.job_name(queue, 3, "gnn-trainer", "gnn_train")
    assert same != naming.job_name("c927fa13-3b22-4d44-bc81-1f902a222eee", 3, "gnn-trainer", "gnn_train")


def test_label_values_are_valid():
    assert naming.label_value("realtime_gnn_infer") == "realtime_gnn_infer"
    assert len(naming.label_value("a" * 100)) == 63
    assert naming.label_value("-x/y-") == "x-y"
