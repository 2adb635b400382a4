"""What API Gateway does before a keyed, authorized method's Lambda runs: check the API key, then
run the token authorizer (the real handler) and honour its decision."""

from __future__ import annotations

from .importer import REGION


def refused(
    path: str, method: str, *, api_key: str, expected_key: str, token: str
) -> tuple[int, dict[str, str]] | None:
    """The 403 API Gateway would answer, or None when the request may go through."""
    from token_authorizer.handler import handler as authorize

    if api_key != expected_key:
        return 403, {"message": "Forbidden"}
    method_arn = f"arn:aws:execute-api:{REGION}:123456789012:sandbox/v1/{method}{path}"
    decision = authorize(
        {"type": "REQUEST", "headers": {"Authorization": f"Bearer {token}"}, "methodArn": method_arn}, None
    )
    if decision["policyDocument"]["Statement"][0]["Effect"] != "Allow":
        return 403, {"message": "User is not authorized to access this resource"}
    return None
