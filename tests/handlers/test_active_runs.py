"""The active-runs item of the runs table against moto: how runs find how many share the workspace."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from braze_importer.aws import ACTIVE_KEY, DynamoActiveRuns
from moto import mock_aws

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def active(aws_env: None) -> Iterator[DynamoActiveRuns]:
    with mock_aws():
        client = boto3.client("dynamodb")
        client.create_table(
            TableName="runs",
            KeySchema=[{"AttributeName": "run_id", "KeyType": "HASH"}],
            AttributeDefinitions=[{"AttributeName": "run_id", "AttributeType": "S"}],
            BillingMode="PAY_PER_REQUEST",
        )
        yield DynamoActiveRuns(client, "runs")


def test_runs_count_each_other_while_their_leases_last(active: DynamoActiveRuns) -> None:
    assert active.beat("bucket/a.json#v1", now=1000.0, lease_seconds=6.0) == 1  # the first run creates the item
    assert active.beat("bucket/b.json#v1", now=1001.0, lease_seconds=6.0) == 2
    assert active.beat("bucket/a.json#v1", now=1002.0, lease_seconds=6.0) == 2  # a renewal is not a new run
    active.leave("bucket/b.json#v1")
    assert active.beat("bucket/a.json#v1", now=1003.0, lease_seconds=6.0) == 1
    active.leave("bucket/never-noted#v1")  # harmless


def test_a_run_that_died_stops_counting_and_is_tidied_away(active: DynamoActiveRuns) -> None:
    active.beat("dead", now=1000.0, lease_seconds=6.0)
    assert active.beat("alive", now=1005.0, lease_seconds=6.0) == 2
    assert active.beat("alive", now=1007.0, lease_seconds=6.0) == 1  # dead's lease ended at 1006
    item = boto3.client("dynamodb").get_item(TableName="runs", Key={"run_id": {"S": ACTIVE_KEY}})["Item"]
    assert set(item["members"]["M"]) == {"alive"} and "expires_at" in item


def test_leaving_before_the_item_exists_is_harmless(active: DynamoActiveRuns) -> None:
    active.leave("run")
    assert active.beat("run", now=1.0, lease_seconds=6.0) == 1
