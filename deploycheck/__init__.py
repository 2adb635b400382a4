"""``python -m deploycheck``: prove a deployment answers, without sending anything to Braze or
changing data. Reads the deployed stacks' outputs from CloudFormation; runs the same checks
against the sandbox with ``--sandbox``."""
