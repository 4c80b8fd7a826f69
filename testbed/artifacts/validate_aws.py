#!/usr/bin/env python3
"""Check manifests/ecs-task-definition.json and manifests/iam-policy.json.

- The task definition must be a valid RegisterTaskDefinition request,
  checked against botocore's ECS service model (offline).
- The IAM policy must grant exactly the actions tend's code calls. Every
  ECS, SQS and S3 operation called in src/ maps to IAM actions, and the
  policy may grant neither fewer nor more. Calls are found by the SDK's
  snake_case method names, taken from botocore's service models.

Prints one line per problem and exits 1 if there is any.
"""
import json
import pathlib
import re
import sys

import botocore.session
from botocore.validate import ParamValidator

ROOT = pathlib.Path(__file__).resolve().parents[2]

# IAM actions each SDK call needs. The multipart calls are authorised by
# s3:PutObject. RunTask also needs iam:PassRole for the task and execution
# roles of the task definition and of any taskRoleArn or executionRoleArn
# override.
ACTIONS = {
    ("ecs", "list_clusters"): ["ecs:ListClusters"],
    ("ecs", "describe_clusters"): ["ecs:DescribeClusters"],
    ("ecs", "list_container_instances"): ["ecs:ListContainerInstances"],
    ("ecs", "describe_container_instances"): ["ecs:DescribeContainerInstances"],
    ("ecs", "describe_task_definition"): ["ecs:DescribeTaskDefinition"],
    ("ecs", "run_task"): ["ecs:RunTask", "iam:PassRole"],
    ("ecs", "describe_tasks"): ["ecs:DescribeTasks"],
    ("sqs", "receive_message"): ["sqs:ReceiveMessage"],
    ("sqs", "change_message_visibility"): ["sqs:ChangeMessageVisibility"],
    ("sqs", "delete_message"): ["sqs:DeleteMessage"],
    # A batch delete is authorised by the DeleteMessage permission.
    ("sqs", "delete_message_batch"): ["sqs:DeleteMessage"],
    ("sqs", "send_message"): ["sqs:SendMessage"],
    ("sqs", "get_queue_attributes"): ["sqs:GetQueueAttributes"],
    ("s3", "list_objects_v2"): ["s3:ListBucket"],
    ("s3", "get_object"): ["s3:GetObject"],
    ("s3", "put_object"): ["s3:PutObject"],
    ("s3", "create_multipart_upload"): ["s3:PutObject"],
    ("s3", "upload_part"): ["s3:PutObject"],
    ("s3", "complete_multipart_upload"): ["s3:PutObject"],
    ("s3", "abort_multipart_upload"): ["s3:AbortMultipartUpload"],
}


def snake_case(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])(?=[A-Z])", "_", name).lower()


def called_operations(session) -> set:
    """(service, method) pairs of SDK calls found in src/."""
    text = "\n".join(p.read_text() for p in (ROOT / "src").rglob("*.rs"))
    found = set()
    for service in ("ecs", "sqs", "s3"):
        model = session.get_service_model(service)
        for operation in model.operation_names:
            method = snake_case(operation)
            if re.search(rf"\.{method}\(\)", text):
                found.add((service, method))
    return found


def check_policy(session, problems):
    policy = json.loads((ROOT / "manifests" / "iam-policy.json").read_text())
    granted = set()
    for statement in policy["Statement"]:
        if statement.get("Effect") != "Allow":
            problems.append(f"iam-policy.json: statement {statement.get('Sid')} is not an Allow")
        actions = statement["Action"]
        granted.update([actions] if isinstance(actions, str) else actions)
    needed = set()
    for call in sorted(called_operations(session)):
        if call not in ACTIONS:
            problems.append(f"src/ calls {call[0]} {call[1]}, which validate_aws.py does not map to IAM actions")
            continue
        needed.update(ACTIONS[call])
    for action in sorted(needed - granted):
        problems.append(f"iam-policy.json: missing {action}, which tend's code needs")
    for action in sorted(granted - needed):
        problems.append(f"iam-policy.json: grants {action}, which no call in src/ needs")


def check_task_definition(session, problems):
    request = json.loads((ROOT / "manifests" / "ecs-task-definition.json").read_text())
    shape = session.get_service_model("ecs").operation_model("RegisterTaskDefinition").input_shape
    report = ParamValidator().validate(request, shape)
    if report.has_errors():
        problems.append("ecs-task-definition.json: " + report.generate_report().replace("\n", "; "))
        return
    tend = next((c for c in request["containerDefinitions"] if c["name"] == "tend"), None)
    if tend is None:
        problems.append("ecs-task-definition.json: no container named tend")
        return
    if tend.get("stopTimeout", 30) <= 25:
        problems.append("ecs-task-definition.json: tend's stopTimeout must exceed its 25 s shutdown grace")
    if not tend.get("user", "").split(":")[0].isdigit():
        problems.append("ecs-task-definition.json: tend must run as a numeric user")


def main() -> int:
    session = botocore.session.get_session()
    problems = []
    check_policy(session, problems)
    check_task_definition(session, problems)
    for problem in problems:
        print(problem)
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
