"""API Gateway's account-level CloudWatch Logs role: one setting per account and region, so one
place in the app creates it; every stack with an API depends on this one.

Account-wide effects: deploying sets the region's API Gateway ``CloudWatchRoleArn`` to this role,
replacing whatever role was set (every REST and WebSocket API in the region then logs through it).
The role and the setting are kept on ``cdk destroy``: deleting the role would leave the setting
pointing at nothing and silently stop logging for every API in the region, not only ours. Set
``apiGateway:manageAccountRole=false`` to leave an existing setting alone (the app then creates no
such stack).
"""

from __future__ import annotations

from aws_cdk import Acknowledgment, ArnFormat, RemovalPolicy, Stack, Validations
from aws_cdk import aws_apigateway as apigw
from aws_cdk import aws_iam as iam
from constructs import Construct


class ApiGatewayAccountStack(Stack):
    def __init__(self, scope: Construct, construct_id: str, **kwargs: object) -> None:
        super().__init__(scope, construct_id, **kwargs)  # type: ignore[arg-type]
        self.role = iam.Role(
            self,
            "CloudWatchRole",
            assumed_by=iam.ServicePrincipal("apigateway.amazonaws.com"),
            description="API Gateway's account-level role for writing API logs to CloudWatch Logs",
        )
        self.role.apply_removal_policy(RemovalPolicy.RETAIN)
        # A policy of its own (not a managed-policy attachment inside the role) so the account
        # setting can wait for it: API Gateway refuses a role whose permissions IAM has not yet
        # propagated ("role ARN does not have required permissions").
        self.policy = iam.Policy(
            self,
            "CloudWatchRolePolicy",
            roles=[self.role],
            statements=[
                iam.PolicyStatement(
                    # What AWS's AmazonAPIGatewayPushToCloudWatchLogs grants, in this account and region.
                    actions=[
                        "logs:CreateLogGroup",
                        "logs:CreateLogStream",
                        "logs:DescribeLogGroups",
                        "logs:DescribeLogStreams",
                        "logs:PutLogEvents",
                        "logs:GetLogEvents",
                        "logs:FilterLogEvents",
                    ],
                    resources=[self.format_arn(service="logs", resource="log-group", resource_name="*",
                                               arn_format=ArnFormat.COLON_RESOURCE_NAME)],
                )
            ],
        )  # fmt: skip
        self.policy.apply_removal_policy(RemovalPolicy.RETAIN)
        Validations.of(self.policy).acknowledge(
            Acknowledgment(
                id="AwsSolutions-IAM5[Resource::arn:<AWS::Partition>:logs:<AWS::Region>:<AWS::AccountId>:log-group:*]",
                reason="API Gateway writes execution and access logs of every API in the region through this one "
                "account-level role, into log groups it names per API and stage.",
            )
        )
        self.account_setting = apigw.CfnAccount(self, "Account", cloud_watch_role_arn=self.role.role_arn)
        self.account_setting.apply_removal_policy(RemovalPolicy.RETAIN)
        self.account_setting.node.add_dependency(self.role, self.policy)
