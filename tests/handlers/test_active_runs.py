"""The active-runs item of the runs table against moto: how runs find how many share the workspace."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import boto3
import pytest
from botocore.exceptions import ClientError
from braze_importer.aws import ACTIVE_KEY, DynamoActiveRuns
from moto import mock_aws

from tests.fakes import create_runs_table

pytestmark = pytest.mark.usefixtures("aws_env")


@pytest.fixture
def active(aws_env: None) -> Iterator[DynamoActiveRuns]:
    with mock_aws():
        client = boto3.client("dynamodb")
        create_runs_table(client)
        yield DynamoActiveRuns(client, "runs")


def test_runs_count_each_other_while_their_leases_last(active: DynamoActiveRuns) -> None:
    assert len(active.beat("bucket/a.json#v1", now=1000.0, lease_seconds=6.0)) == 1  # the first run creates the item
    assert len(active.beat("bucket/b.json#v1", now=1001.0, lease_seconds=6.0)) == 2
    assert len(active.beat("bucket/a.json#v1", now=1002.0, lease_seconds=6.0)) == 2  # a renewal is not a new run
    active.leave("bucket/b.json#v1")
    assert len(active.beat("bucket/a.json#v1", now=1003.0, lease_seconds=6.0)) == 1
    active.leave("bucket/never-noted#v1")  # harmless


def test_a_run_that_died_stops_counting_and_is_tidied_away(active: DynamoActiveRuns) -> None:
    active.beat("dead", now=1000.0, lease_seconds=6.0)
    assert len(active.beat("alive", now=1005.0, lease_seconds=6.0)) == 2
    assert len(active.beat("alive", now=1007.0, lease_seconds=6.0)) == 1  # dead's lease ended at 1006
    item = boto3.client("dynamodb").get_item(TableName="runs", Key={"run_id": {"S": ACTIVE_KEY}})["Item"]
    assert set(item["members"]["M"]) == {"alive"} and "expires_at" in item


def test_leaving_before_the_item_exists_is_harmless(active: DynamoActiveRuns) -> None:
    active.leave("run")
    assert len(active.beat("run", now=1.0, lease_seconds=6.0)) == 1


class _TidyThrottled:
    """The runs table where every tidy-up (a conditional REMOVE on the hot item) is throttled."""

    def __init__(self, client: Any) -> None:
        self._client = client

    def update_item(self, **kwargs: Any) -> Any:
        if "ConditionExpression" in kwargs:
            error = {"Error": {"Code": "ProvisionedThroughputExceededException", "Message": "hot"}}
            raise ClientError(error, "UpdateItem")  # type: ignore[arg-type]
        return self._client.update_item(**kwargs)


def test_a_failed_tidy_up_does_not_throw_the_renewal_away(active: DynamoActiveRuns) -> None:
    client = boto3.client("dynamodb")
    active.beat("crashed", now=1000.0, lease_seconds=6.0)
    hot = DynamoActiveRuns(_TidyThrottled(client), "runs")
    hot.beat("other", now=1010.0, lease_seconds=6.0, rate=40.0)
    # "crashed" is tidied away by no one: the renewal still answers, and counts only live runs.
    assert hot.beat("me", now=1011.0, lease_seconds=6.0) == {"other": 40.0, "me": None}
    item = client.get_item(TableName="runs", Key={"run_id": {"S": ACTIVE_KEY}})["Item"]
    assert set(item["members"]["M"]) == {"crashed", "other", "me"}  # the renewal itself was written


def test_each_run_notes_its_recent_rate_beside_its_lease(active: DynamoActiveRuns) -> None:
    assert active.beat("a", now=1000.0, lease_seconds=6.0) == {"a": None}  # not measured yet
    assert active.beat("b", now=1000.5, lease_seconds=6.0, rate=12.5) == {"a": None, "b": 12.5}
    assert active.beat("a", now=1001.0, lease_seconds=6.0, rate=80.0) == {"a": 80.0, "b": 12.5}
    active.leave("b")
    assert active.beat("a", now=1002.0, lease_seconds=6.0, rate=95.0) == {"a": 95.0}
    item = boto3.client("dynamodb").get_item(TableName="runs", Key={"run_id": {"S": ACTIVE_KEY}})["Item"]
    assert set(item["rates"]["M"]) == {"a"}


def test_an_item_noted_before_rates_existed_keeps_working(active: DynamoActiveRuns) -> None:
    client = boto3.client("dynamodb")
    client.put_item(
        TableName="runs",
        Item={"run_id": {"S": ACTIVE_KEY}, "members": {"M": {"old": {"N": "1005.0"}, "gone": {"N": "990.0"}}}},
    )
    assert active.beat("new", now=1000.0, lease_seconds=6.0, rate=5.0) == {"old": None, "new": 5.0}
    active.leave("old")
    assert active.beat("new", now=1001.0, lease_seconds=6.0) == {"new": None}


def test_each_endpoint_group_counts_only_its_own_runs(active: DynamoActiveRuns) -> None:
    from braze_importer.aws import active_key

    assert active.beat("track-a", now=1000.0, lease_seconds=6.0) == {"track-a": None}
    assert active.beat("catalog-a", now=1000.0, lease_seconds=6.0, rate=5.0, group="catalog") == {"catalog-a": 5.0}
    assert active.beat("delete-a", now=1000.0, lease_seconds=6.0, group="user_delete") == {"delete-a": None}
    assert set(active.beat("catalog-b", now=1001.0, lease_seconds=6.0, group="catalog")) == {"catalog-a", "catalog-b"}
    assert active.beat("track-a", now=1001.0, lease_seconds=6.0) == {"track-a": None}  # /users/track's own item
    active.leave("catalog-a", group="catalog")
    assert active.beat("catalog-b", now=1002.0, lease_seconds=6.0, group="catalog") == {"catalog-b": None}
    assert active_key() == ACTIVE_KEY and active_key("catalog") == f"{ACTIVE_KEY}#catalog"
    client = boto3.client("dynamodb")
    item = client.get_item(TableName="runs", Key={"run_id": {"S": active_key("catalog")}})["Item"]
    assert set(item["members"]["M"]) == {"catalog-b"}
