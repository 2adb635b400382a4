"""The user pool's post-confirmation trigger: a user who confirms their sign-up without a Braze
external id gets their Cognito ``sub`` as one. Users cannot write the attribute themselves (the app
client's write attributes leave it out); an administrator sets another value with
``admin-update-user-attributes`` (README)."""

from __future__ import annotations

from functools import cache
from typing import Any

import boto3
from aws_lambda_powertools import Logger
from pipeline_common.tracing import tracer

from .settings import confirmation_settings

logger = Logger(service="client-capture-confirmation")


@cache
def _cognito() -> Any:
    return boto3.client("cognito-idp")


@logger.inject_lambda_context(clear_state=True)
@tracer.capture_lambda_handler(capture_response=False)  # the answer is Cognito's event: the user's attributes
def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    attribute = confirmation_settings().external_id_attribute
    attributes = (event.get("request") or {}).get("userAttributes") or {}
    if event.get("triggerSource") != "PostConfirmation_ConfirmSignUp" or attributes.get(attribute):
        return event
    _cognito().admin_update_user_attributes(
        UserPoolId=event["userPoolId"],
        Username=event["userName"],
        UserAttributes=[{"Name": attribute, "Value": attributes["sub"]}],
    )
    logger.info("external id set to the user's sub")
    return event
