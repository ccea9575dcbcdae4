"""`buyit analytics` and `buyit sql` over a small simulated lake; the SQL session only reads."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from buyit.cli import app
from sinks import lake_sql
from tests.sim.market_day import market_day
from tests.test_analytics_day import write_day

runner = CliRunner()


@pytest.fixture(scope="module")
def lake(tmp_path_factory):
    root = tmp_path_factory.mktemp("cli") / "lake"
    write_day(root, market_day(carts=200).events, redeliver=0)
    return root


class TestAnalyticsCommand:
    def test_csv_of_a_named_query(self, lake):
        result = runner.invoke(app, ["analytics", "platform-fees", "--lake", str(lake), "--csv"])
        assert result.exit_code == 0, result.output
        lines = result.output.splitlines()
        assert lines[0] == "bucket,currency,feesCents" and len(lines) >= 2

    def test_one_seller_hourly_as_a_table(self, lake):
        result = runner.invoke(app, ["analytics", "sales-by-seller", "--lake", str(lake), "--bucket", "hour",
                                     "--seller", "seller-03", "--since", "2025-03-01T08:00"])
        assert result.exit_code == 0, result.output
        assert result.output.split()[:3] == ["bucket", "sellerId", "currency"] and "seller-04" not in result.output

    @pytest.mark.parametrize("args", [["nope"], ["funnel", "--bucket", "week"], ["funnel", "--since", "soon"]],
                             ids=["unknown_query", "bad_bucket", "bad_time"])
    def test_bad_arguments_exit_2(self, lake, args):
        assert runner.invoke(app, ["analytics", *args, "--lake", str(lake)]).exit_code == 2


class TestSqlSession:
    def test_a_query_over_the_views(self, lake):
        result = runner.invoke(app, ["sql", "--lake", str(lake), "--csv", "-c",
                                     "SELECT count(*) AS n FROM order_lines"])
        assert result.exit_code == 0 and int(result.output.splitlines()[1]) > 0

    @pytest.mark.parametrize("statement", [
        "CREATE TABLE t AS SELECT 1", "COPY (SELECT 1) TO '{lake}/evil.csv'", "ATTACH '{lake}/evil.db'",
        "SET enable_external_access = true", "SELECT 1; DROP VIEW order_lines"],
        ids=["create", "copy_into_the_lake", "attach", "unlock", "write_after_a_read"])
    def test_writes_are_refused(self, lake, statement):
        result = runner.invoke(app, ["sql", "--lake", str(lake), "-c", statement.format(lake=lake)])
        assert result.exit_code == 1 and "read-only" in result.output
        assert not list(lake.glob("evil.*"))

    def test_files_outside_the_lake_are_out_of_reach(self, lake):
        con = lake_sql.connect(lake)
        with pytest.raises(Exception, match="(?i)permission"):
            lake_sql.execute_read(con, "SELECT * FROM read_csv('/etc/hostname')")

    def test_statements_from_stdin(self, lake):
        result = runner.invoke(app, ["sql", "--lake", str(lake), "--csv"],
                               input="SELECT count(*) AS carts\n  FROM cart_events WHERE event = 'CREATED';\n")
        assert result.exit_code == 0 and result.output.splitlines() == ["carts", "200"]
