"""The AWS drift monitor (components/aws/drift_job.py) under Pulumi mocks.

Proves, from what the program registers: a model with `monitoring.drift` gets a
one-step SageMaker pipeline whose Processing job mounts exactly that model's
prefix of the stack's capture bucket and its code archive (uploaded by the program,
KMS-encrypted, content-addressed), in the SKLearn image the sagemaker SDK names, and
its entrypoint unpacks the archive, installs the lock's pins and runs
`llmops.datasets.drift` (the local monitor's module) publishing to CloudWatch; EventBridge starts it on the
registry's interval through a role that may start that pipeline only; the job's
role pulls that one image, reads its code and the capture prefix, decrypts them,
writes metrics to one namespace and its logs, and nothing more; a CloudWatch alarm on DriftDetected notifies the
monitoring stack's SNS topic; a model without `monitoring.drift` gets none of it.
Cannot prove: AWS's acceptance of the inputs, or that pip reaches PyPI from the job.
"""

from __future__ import annotations

import base64
import io
import json
import shlex
import shutil
import tarfile

import pytest
import yaml

from llmops.ci.mock_runtime import event_loop
from llmops.registry import SCHEMA_HEADER, load_registry
from llmops.settings import load_all_stacks

from .fixtures import models
from .harness import REPO, Graph, run_platform

pytestmark = pytest.mark.mocks

MODEL = "chat-sm"


@pytest.fixture(scope="module")
def graph(tmp_path_factory: pytest.TempPathFactory) -> Graph:
    root = tmp_path_factory.mktemp("drift")
    entries = {name: e for name, e in models().items() if name in (MODEL, "code-eks")}
    entries[MODEL]["monitoring"]["drift"] = {"dataset": "tiny-chat-corpus", "interval_seconds": 300}
    models_dir = root / "models"
    (models_dir / "configs").mkdir(parents=True)
    shutil.copytree(REPO / "models" / "datasets", models_dir / "datasets")
    shutil.copytree(REPO / "models" / "evals", models_dir / "evals")
    for name, entry in entries.items():
        (models_dir / f"{name}.yaml").write_text(f"{SCHEMA_HEADER}\n{yaml.safe_dump(entry, sort_keys=False)}")
        shutil.copy(REPO / "models" / entry["source"]["config"], models_dir / entry["source"]["config"])
    stacks = load_all_stacks(REPO / "stacks")
    registry = load_registry(models_dir, stacks)
    with event_loop():  # module-scoped: set up before the per-test loop exists
        return run_platform("dev", stacks["dev"], registry, REPO)


def _drift(graph: Graph, typ: str) -> list:  # type: ignore[type-arg]
    return [r for r in graph.of_type(typ) if "-drift" in r.name]


def test_one_scheduled_pipeline_reads_the_models_capture_prefix(graph: Graph) -> None:
    [pipeline] = _drift(graph, "aws:sagemaker/pipeline:Pipeline")
    definition = json.loads(pipeline.inputs["pipelineDefinition"])
    [step] = definition["Steps"]
    assert step["Type"] == "Processing"
    args = step["Arguments"]
    inputs = {i["InputName"]: i["S3Input"] for i in args["ProcessingInputs"]}
    assert set(inputs) == {"code", "capture"}
    capture = inputs["capture"]
    [bucket] = [b.inputs.get("bucket") or b.name for b in graph.of_type("aws:s3/bucket:Bucket") if "capture" in b.name]
    assert capture["S3Uri"].startswith("s3://") and capture["S3Uri"].endswith(f"/{MODEL}/")
    assert capture["LocalPath"] == f"/opt/ml/processing/capture/{MODEL}"
    assert bucket

    # The image: SageMaker's SKLearn (Python 3.12) image from AWS's registry, as the SDK's tables name it.
    image = args["AppSpecification"]["ImageUri"]
    assert image == "683313688378.dkr.ecr.us-east-1.amazonaws.com/sagemaker-scikit-learn:1.4-2-py312-cpu-py3"
    assert args["Environment"]["LLMOPS_ROOT"] == inputs["code"]["LocalPath"] == "/opt/ml/processing/code"

    # The code input is the folder of the uploaded archive object.
    [obj] = _drift(graph, "aws:s3/bucketObjectv2:BucketObjectv2")
    assert obj.inputs["serverSideEncryption"] == "aws:kms" and obj.inputs["kmsKeyId"]
    folder = obj.inputs["key"].rsplit("/", 1)[0]
    assert inputs["code"]["S3Uri"].endswith(f"/{folder}/") and folder.startswith(f"{MODEL}/drift-code/")

    # The entrypoint unpacks that archive, installs its pins and runs the local monitor's module.
    shell, flag, script = args["AppSpecification"]["ContainerEntrypoint"]
    assert (shell, flag) == ("bash", "-c")
    assert "tar xzf code.tar.gz" in script
    assert "pip install -q --no-cache-dir -r requirements.txt -c constraints.txt" in script
    run = script[script.index("python3 -m llmops.datasets.drift") :]
    words = shlex.split(run.split("||")[0])
    assert words[:4] == ["python3", "-m", "llmops.datasets.drift", "run"]
    assert words[words.index("--cloudwatch") + 1] == "LLMOps/Drift"
    assert words[words.index("--dataset") + 1] == "tiny-chat-corpus"
    assert words[words.index("--capture") + 1] == "/opt/ml/processing/capture"

    [rule] = _drift(graph, "aws:cloudwatch/eventRule:EventRule")
    assert rule.inputs["scheduleExpression"] == "rate(5 minutes)"
    [target] = _drift(graph, "aws:cloudwatch/eventTarget:EventTarget")
    assert target.inputs["arn"].startswith("arn:aws:sagemaker:") and ":pipeline/" in target.inputs["arn"]


def test_code_archive_ships_the_monitor_its_dataset_and_pins(graph: Graph) -> None:
    [obj] = _drift(graph, "aws:s3/bucketObjectv2:BucketObjectv2")
    raw = base64.b64decode(obj.inputs["contentBase64"])
    with tarfile.open(fileobj=io.BytesIO(raw)) as tar:
        names = set(tar.getnames())
        requirements = tar.extractfile("requirements.txt").read().decode().split()  # type: ignore[union-attr]
    assert {"llmops/datasets/drift.py", "llmops/paths.py", "models/datasets/tiny-chat-corpus.yaml"} <= names
    assert {"models/data/tiny-chat-corpus/eval.txt", "models/data/tiny-chat-corpus/train.txt"} <= names
    assert "constraints.txt" in names
    lock = set((REPO / "requirements.lock").read_text().split())
    assert requirements and set(requirements) <= lock
    assert {r.split("==")[0] for r in requirements} >= {"evidently", "pandas"}


def _statements(graph: Graph, suffix: str) -> list[dict]:  # type: ignore[type-arg]
    [policy] = [p for p in graph.of_type("aws:iam/rolePolicy:RolePolicy") if p.name.endswith(suffix)]
    return list(json.loads(policy.inputs["policy"])["Statement"])


def test_job_role_reads_capture_and_writes_metrics_only(graph: Graph) -> None:
    statements = _statements(graph, "-drift-policy")
    actions = {a for s in statements for a in s["Action"]}
    assert actions == {
        "s3:GetObject", "s3:ListBucket", "kms:Decrypt", "cloudwatch:PutMetricData", "logs:CreateLogStream",
        "logs:PutLogEvents", "ecr:GetAuthorizationToken", "ecr:BatchGetImage", "ecr:GetDownloadUrlForLayer",
        "ecr:BatchCheckLayerAvailability",
    }  # fmt: skip
    by_sid = {s["Sid"]: s for s in statements}
    assert by_sid["ReadCapture"]["Resource"][0].endswith(f"/{MODEL}/*")
    assert by_sid["ListCapture"]["Condition"] == {"StringLike": {"s3:prefix": [f"{MODEL}/*"]}}
    [obj] = _drift(graph, "aws:s3/bucketObjectv2:BucketObjectv2")
    folder = obj.inputs["key"].rsplit("/", 1)[0]
    assert by_sid["CodeRead"]["Resource"][0].endswith(f":::{obj.inputs['bucket']}/{folder}/*")
    assert by_sid["CodeList"]["Condition"] == {"StringLike": {"s3:prefix": [f"{folder}/*"]}}
    assert by_sid["Decrypt"]["Resource"] == [obj.inputs["kmsKeyId"]]  # the stack's data key, which sealed the code
    # ECR: pull of the SKLearn repository only.
    assert by_sid["EcrPull"]["Resource"] == ["arn:aws:ecr:us-east-1:683313688378:repository/sagemaker-scikit-learn"]
    assert by_sid["Metrics"]["Condition"] == {"StringEquals": {"cloudwatch:namespace": "LLMOps/Drift"}}
    wildcard = [s["Sid"] for s in statements if "*" in s["Resource"]]
    # PutMetricData and GetAuthorizationToken have no resource scope; the namespace narrows the first.
    assert sorted(wildcard) == ["EcrToken", "Metrics"]
    events = _statements(graph, "-drift-events-policy")
    assert [a for s in events for a in s["Action"]] == ["sagemaker:StartPipelineExecution"]


def test_drift_alarm_notifies_the_monitoring_topic(graph: Graph) -> None:
    [alarm] = _drift(graph, "aws:cloudwatch/metricAlarm:MetricAlarm")
    assert alarm.inputs["namespace"] == "LLMOps/Drift"
    assert alarm.inputs["metricName"] == "DriftDetected"
    assert alarm.inputs["dimensions"] == {"Model": MODEL}
    topics = [t for t in graph.of_type("aws:sns/topic:Topic")]
    assert len(topics) == 1
    assert alarm.inputs["alarmActions"] and alarm.inputs["alarmActions"][0].startswith("arn:aws:sns:")


def test_models_without_drift_get_no_monitor(graph: Graph) -> None:
    monitors = [r for r in graph.resources if r.type == "llmops:drift_monitor:DriftMonitor"]
    assert [m.name for m in monitors] == [f"llmops-{MODEL}-drift"]


def test_training_resources_are_tagged_with_their_dataset_version(graph: Graph) -> None:
    tagged = [
        r.inputs["tags"]["dataset"]
        for r in graph.resources
        if r.custom and "training" in r.name and f"-{MODEL}-" in r.name and "dataset" in (r.inputs.get("tags") or {})
    ]
    assert tagged and set(tagged) == {"s3://example-data/chat/train/@2025-06-01"}
