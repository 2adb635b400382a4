"""The sandbox: the product end to end on a laptop, with no AWS account.

moto server stands in for AWS, a local Braze emulator for Braze, and the real Lambda handlers
run in this process with the event shapes and environment Lambda would give them.
"""

import sys
from pathlib import Path

# The Lambda packages live under lambdas/, as they do at the root of their bundles.
_LAMBDAS = str(Path(__file__).resolve().parent.parent / "lambdas")
if _LAMBDAS not in sys.path:
    sys.path.insert(0, _LAMBDAS)
