"""`make demo` keeps working: the seed examples end finished, the third stopped."""

from tests import demo
from tests.servers import FunctionServer, base_env


def test_demo_drives_the_seed_examples_through_a_real_server(tmp_path, capsys):
    with FunctionServer("all", base_env(tmp_path / "local"), tmp_path) as server:
        assert demo.main(["--url", server.url]) == 0
    out = capsys.readouterr().out
    assert out.count("] finished") == 2 and "] stopped" in out
    assert "graph-builder:pending(0) gnn-trainer:pending(0)" in out  # launched in data order, not all at once
