"""Does the configured Bedrock model answer? One tiny Converse request, or which console step is
missing. The client is injected: the sandbox passes a fake, tests a fake that refuses."""

from __future__ import annotations

from typing import Any, Protocol

from botocore.exceptions import ClientError

from .results import Result, failed, passed

NAME = "Bedrock model answers"


class Converse(Protocol):
    def converse(self, **request: Any) -> dict[str, Any]: ...


def model_answers(bedrock: Converse, model_id: str, region: str) -> Result:
    try:
        answer = bedrock.converse(
            modelId=model_id,
            messages=[{"role": "user", "content": [{"text": "Reply with the single word OK."}]}],
            inferenceConfig={"maxTokens": 5, "temperature": 0},
        )
    except ClientError as exc:
        error = exc.response.get("Error", {})
        return failed(NAME, f"{model_id}: {missing_step(str(error.get('Code')), str(error.get('Message')), region)}")
    tokens = answer.get("usage", {}).get("outputTokens", "?")
    return passed(NAME, f"{model_id} in {region} answered ({tokens} of at most 5 tokens)")


def missing_step(code: str, message: str, region: str) -> str:
    """What a person has to do, from what Bedrock said."""
    text = message.lower()
    if code == "AccessDeniedException" and ("use case" in text or "use-case" in text or "form" in text):
        return ("Anthropic's one-time use-case form is missing: Bedrock console → Model catalog → the model → "
                "submit use case details (once per account or organization), then wait a few minutes")  # fmt: skip
    if code == "AccessDeniedException" and ("marketplace" in text or "subscri" in text):
        return ("the account's first call subscribes to the model through AWS Marketplace: call it once with a "
                "principal allowed aws-marketplace:Subscribe, Unsubscribe and ViewSubscriptions (and a valid "
                "payment method), or subscribe in the Bedrock console's Model catalog; it takes up to "
                "15 minutes")  # fmt: skip
    if code == "AccessDeniedException" and "bedrock:" in text:
        return "your credentials may not call bedrock:InvokeModel on it (the check runs as you, not as the function)"
    if code == "AccessDeniedException":
        return (f"access refused ({message}): in the Bedrock console ({region}) open Model catalog, pick the model, "
                "and complete what it asks (use-case form, Marketplace subscription)")  # fmt: skip
    if code == "ValidationException" and "on-demand throughput" in text:
        return (
            "this model needs an inference profile: set currents:bedrockModelId to its profile id (e.g. us.<model id>)"
        )
    if code in ("ResourceNotFoundException", "ValidationException"):
        return f"the model is not offered in {region} or is retired ({message}): pick another currents:bedrockModelId"
    if code == "ThrottlingException":
        return ("throttled: new accounts can start with very low Bedrock quotas; request an increase in Service "
                "Quotas → Amazon Bedrock for this model")  # fmt: skip
    return f"{code}: {message}"


class FakeBedrock:
    """The sandbox's Bedrock: answers every request, or refuses as ``error`` says, never calling AWS."""

    def __init__(self, error: tuple[str, str] | None = None) -> None:
        self.error = error
        self.requests: list[dict[str, Any]] = []

    def converse(self, **request: Any) -> dict[str, Any]:
        self.requests.append(request)
        if self.error:
            code, message = self.error
            raise ClientError({"Error": {"Code": code, "Message": message}}, "Converse")
        return {
            "output": {"message": {"role": "assistant", "content": [{"text": "OK"}]}},
            "stopReason": "end_turn",
            "usage": {"inputTokens": 14, "outputTokens": 1, "totalTokens": 15},
        }
