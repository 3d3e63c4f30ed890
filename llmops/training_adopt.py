"""`llmops train adopt`: an approved SageMaker model package becomes a registry version, by commit.

The training pipeline (started by `ci deploy` when the spec changes, llmops.training_runs)
trains, evaluates against the model's gates and registers a package pending approval. Once a
person approves it, this command turns the package into a change of the model's registry
file: a new entry under `versions:` whose weights are the package's `model.tar.gz`, pinned by
its S3 object version. Nothing serves it until that commit is reviewed and merged and a later
one names the version in a variant (`llmops promote`). The commit message carries the lineage:
dataset@version and spec → pipeline execution → package → S3 object, and the evaluation report.

The local target has the same shape (`adopt_local`): `up` trains a changed spec, measures the
run against the model's gates and records a package (`llmops.local.packages`); adopting it
declares `versions.V: {local: "sha256:<artifact digest>"}`, which never moves with the spec.
A passed gate on every suite stands in for SageMaker's approval.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ruamel.yaml.comments import CommentedMap

from llmops import paths
from llmops.errors import UserError
from llmops.promote import commit_file, dump_yaml, round_trip_yaml, validate_text
from llmops.registry import ARTIFACT_PREFIX, ModelEntry
from llmops.training_runs import OUTPUT, display_name, spec_digest


class AdoptError(UserError):
    """The package cannot become a version as asked; nothing was written."""


@dataclass(frozen=True)
class Package:
    arn: str
    model_data_url: str  # s3://…/model.tar.gz
    version_id: str  # the S3 object version that pins it
    execution_arn: str  # the pipeline execution that made it
    execution_name: str  # its display name: spec-<digest>
    report_uri: str | None  # the evaluation step's report


@dataclass(frozen=True)
class Adoption:
    model: str
    version: str
    path: Path
    before: str
    after: str
    message: str


def latest_approved(sm: Any, group: str) -> str:
    """The newest approved package of the group."""
    found = sm.list_model_packages(
        ModelPackageGroupName=group,
        ModelApprovalStatus="Approved",
        SortBy="CreationTime",
        SortOrder="Descending",
        MaxResults=1,
    ).get("ModelPackageSummaryList", [])
    if not found:
        raise AdoptError(f"no approved package in {group}: approve one (SageMaker Model Registry) first")
    return str(found[0]["ModelPackageArn"])


def describe_package(sm: Any, s3: Any, arn: str) -> Package:
    """The package's weights pinned by S3 object version, and the run that made it."""
    package = sm.describe_model_package(ModelPackageName=arn)
    if package.get("ModelApprovalStatus") != "Approved":
        raise AdoptError(f"{arn} is {package.get('ModelApprovalStatus')}, not Approved")
    url = package["InferenceSpecification"]["Containers"][0]["ModelDataUrl"]
    bucket, _, key = url.removeprefix("s3://").partition("/")
    version_id = s3.head_object(Bucket=bucket, Key=key).get("VersionId")
    if not version_id:
        raise AdoptError(f"{url} has no object version: its bucket must be versioned to pin it")
    execution_arn = (package.get("MetadataProperties") or {}).get("GeneratedBy", "")
    execution = sm.describe_pipeline_execution(PipelineExecutionArn=execution_arn) if execution_arn else {}
    statistics = ((package.get("ModelMetrics") or {}).get("ModelQuality") or {}).get("Statistics") or {}
    return Package(
        arn, url, version_id, execution_arn, execution.get("PipelineExecutionDisplayName", ""), statistics.get("S3Uri")
    )


def s3_weights(package: Package) -> CommentedMap:
    """A version source declaring the package's archive at its S3 object version."""
    return CommentedMap({"s3": CommentedMap({"uri": package.model_data_url, "version_id": package.version_id})})


def declare_version(text: str, version: str, package: Package) -> str:
    """The registry file with `versions.<version>` declared as the package's archive; layout kept."""
    return _declare(text, version, s3_weights(package))


def _versions(text: str) -> tuple[CommentedMap, CommentedMap]:
    """The registry file's tree (layout kept) and its `versions` mapping."""
    tree = round_trip_yaml().load(text)
    versions = tree.get("versions") if isinstance(tree, CommentedMap) else None
    if not isinstance(versions, CommentedMap):
        raise AdoptError("the file has no `versions` mapping")
    return tree, versions


def _same(declared: Any, wanted: Any) -> bool:
    """Whether a declared source field names `wanted`; a mapping may add fields (a pinned digest)."""
    if isinstance(wanted, Mapping):
        return isinstance(declared, Mapping) and all(_same(declared.get(k), v) for k, v in wanted.items())
    return bool(declared == wanted)


def _declaring(versions: Mapping[str, Any], weights: Mapping[str, Any]) -> str | None:
    return next((name for name, source in versions.items() if _same(source, weights)), None)


def declared_as(text: str, weights: Mapping[str, Any]) -> str | None:
    """The version of the registry file `text` that already declares `weights`, if any."""
    return _declaring(_versions(text)[1], weights)


def _declare(text: str, version: str, weights: CommentedMap) -> str:
    tree, versions = _versions(text)
    if version in versions:
        raise AdoptError(f"version {version!r} is declared already: a new run is a new version")
    if (name := _declaring(versions, weights)) is not None:
        raise AdoptError(f"these weights are declared already, as version {name!r}")
    versions[version] = weights
    return dump_yaml(tree)


def adopt_local(root: Path, entry: ModelEntry, version: str, outputs: dict[str, Any], sha: str | None) -> Adoption:
    """The local target's package (the stack's current run, or the artifact `sha`) as version `version`,
    pinned by digest; refused unless its record says every gate passed and its files still hash to it."""
    from llmops.local.packages import OUTPUT as PACKAGES
    from llmops.local.packages import PackageMissingError, gate_values, read_package
    from llmops.local.store import STORE_DIR, ArtifactStore

    current = (outputs.get(PACKAGES) or {}).get(entry.name)
    if sha is None and current is None:
        raise AdoptError(f"{entry.name} has no local training package in this stack's outputs: run `up` first")
    sha = (sha or str((current or {})["artifactSha256"])).removeprefix(ARTIFACT_PREFIX)
    store = ArtifactStore(root / STORE_DIR)
    try:
        record = read_package(store.root, entry.name, sha)
    except (PackageMissingError, ValueError) as exc:
        raise AdoptError(f"{exc}: the package is written when `up` trains and evaluates a run") from None
    failed = [
        f"{suite}/{metric} {gate['value']} (threshold {gate['threshold']})"
        for suite, result in sorted(record["evaluation"].items())
        for metric, gate in sorted(result["gates"].items())
        if not gate["passed"]
    ]
    if failed or not record.get("passed"):
        raise AdoptError(f"package {sha[:12]} failed its evaluation gates: {'; '.join(failed) or 'see its record'}")
    if not store.exists(sha) or not store.verify(sha):
        raise AdoptError(f"artifact {sha[:12]} is missing from {store.root} or its files no longer hash to it")
    path = paths.models_dir(root) / f"{entry.name}.yaml"
    before = path.read_text(encoding="utf-8")
    after = _declare(before, version, CommentedMap({"local": f"{ARTIFACT_PREFIX}{sha}"}))
    problems = validate_text(root, path.name, after)
    if problems:
        raise AdoptError("the new version would make the file invalid, nothing written:\n" + "\n".join(problems))
    lineage = record.get("lineage") or {}
    dataset = lineage.get("dataset") or {}
    md5 = ", ".join(f"{k} {v}" for k, v in sorted((dataset.get("md5") or {}).items()))
    spec = (
        "the registry's current training spec"
        if entry.training is not None and record.get("spec") == spec_digest(entry)
        else f"an earlier training spec ({str(record.get('spec'))[:12]})"
    )
    measured = "\n".join(f"  {k}: {v:.4g}" for k, v in gate_values(record).items())
    message = (
        f"feat(models): {entry.name} {version} from local training package {sha[:12]}\n\n"
        f"Lineage: {dataset.get('ref', 'not a registry dataset')} ({md5 or 'no md5s'}), "
        f"base {lineage.get('base') or 'scratch'}, hyperparameters "
        f"{json.dumps(_plain(lineage.get('hyperparameters') or {}), sort_keys=True)}, "
        f"code {lineage.get('commit') or 'unknown'}"
        f" -> artifact sha256:{sha}.\nTrained with {spec}.\n"
        f"Evaluation (every gate passed; {record.get('createdAt')}):\n{measured}\n"
        f"Declared only: it serves once a later change names {version} in a variant (llmops promote)."
    )
    return Adoption(entry.name, version, path, before, after, message)


def adopt(
    root: Path, entry: ModelEntry, version: str, outputs: dict[str, Any], sm: Any, s3: Any, package: str | None = None
) -> Adoption:
    """Compute and validate the registry change for the approved package; writes nothing."""
    run = (outputs.get(OUTPUT) or {}).get(entry.name)
    if run is None:
        raise AdoptError(f"{entry.name} has no SageMaker training pipeline in this stack's outputs")
    return adoption_of(
        root, entry, version, describe_package(sm, s3, package or latest_approved(sm, run["packageGroup"]))
    )


def adoption_of(root: Path, entry: ModelEntry, version: str, found: Package) -> Adoption:
    """The registry change declaring the described package as `version`, validated; writes nothing."""
    path = paths.models_dir(root) / f"{entry.name}.yaml"
    before = path.read_text(encoding="utf-8")
    after = declare_version(before, version, found)
    problems = validate_text(root, path.name, after)
    if problems:
        raise AdoptError("the new version would make the file invalid, nothing written:\n" + "\n".join(problems))
    training = entry.training
    assert training is not None
    digest = spec_digest(entry)
    spec = (
        "the registry's current training spec"
        if found.execution_name == display_name(digest)
        else f"an earlier training spec (run {found.execution_name or 'unknown'}; the registry's is {digest[:12]})"
    )
    message = (
        f"feat(models): {entry.name} {version} from training package {found.arn.rsplit('/', 1)[-1]}\n\n"
        f"Lineage: {training.dataset.ref} (base {training.base_model}) -> pipeline execution "
        f"{found.execution_arn or 'unknown'} -> package {found.arn} -> {found.model_data_url} "
        f"(object version {found.version_id}).\nTrained with {spec}.\n"
        f"Evaluation report: {found.report_uri or 'none recorded'}.\n"
        f"Declared only: it serves once a later change names {version} in a variant (llmops promote)."
    )
    return Adoption(entry.name, version, path, before, after, message)


def next_version(entry: ModelEntry) -> str:
    """The version name after the model's `v<N>` names (`v1` when it has none of that form)."""
    numbers = [int(name[1:]) for name in entry.versions if name[:1] == "v" and name[1:].isdigit()]
    return f"v{max(numbers, default=0) + 1}"


@dataclass
class Pending:
    """What `train adopt --pending` found: adoptions to propose; models passed over (none approved,
    declared already, gone from the registry) and models refused (the declaration would be invalid)."""

    adoptions: list[Adoption]
    passed_over: list[str]
    refused: list[str]


def pending(root: Path, models: dict[str, ModelEntry], outputs: dict[str, Any], sm: Any, s3: Any) -> Pending:
    """Every trained model of the stack whose newest approved package no version declares yet, as an
    adoption under its next version name, and a line per model passed over or refused (with the
    reason). Writes nothing."""
    found_pending = Pending([], [], [])
    for model in sorted(outputs.get(OUTPUT) or {}):
        entry = models.get(model)
        if entry is None:
            found_pending.passed_over.append(f"{model}: trained by the stack but no longer in the registry, skipped")
            continue
        group = str(outputs[OUTPUT][model]["packageGroup"])
        try:
            found = describe_package(sm, s3, latest_approved(sm, group))
        except AdoptError as exc:
            found_pending.passed_over.append(f"{model}: {exc}")
            continue
        text = (paths.models_dir(root) / f"{model}.yaml").read_text(encoding="utf-8")
        if (name := declared_as(text, s3_weights(found))) is not None:
            found_pending.passed_over.append(f"{model}: the newest approved package is declared already, as {name}")
            continue
        try:
            found_pending.adoptions.append(adoption_of(root, entry, next_version(entry), found))
        except AdoptError as exc:
            found_pending.refused.append(f"{model}: refused: {exc}")
    return found_pending


def _plain(values: dict[str, Any]) -> dict[str, Any]:
    """Whole numbers as integers: the engine hands every number to a provider as a float."""
    return {k: int(v) if isinstance(v, float) and v.is_integer() else v for k, v in values.items()}


def write(root: Path, adoption: Adoption, commit: bool) -> str | None:
    """Write the file; with `commit`, commit it alone and return the commit id."""
    adoption.path.write_text(adoption.after, encoding="utf-8")
    return commit_file(root, adoption.path, adoption.message) if commit else None


def add_parser(sub: Any) -> None:
    train = sub.add_parser("train", help="fine-tuning: adopt a training package as a new, pinned version")
    train_sub = train.add_subparsers(dest="train_command", required=True, metavar="COMMAND")
    p = train_sub.add_parser(
        "adopt",
        help="declare MODEL's newest approved SageMaker package, or on a local stack its current run's package "
        "(or --package) as a new version; prints the diff",
    )
    p.add_argument("model", nargs="?", help="the registry model (not with --pending)")
    p.add_argument("--stack", required=True, help="the stack whose training pipeline made the package")
    p.add_argument("--version", help="the new version's name under `versions:` (`auto`: the next v<N>)")
    p.add_argument(
        "--pending",
        action="store_true",
        help="aws: every model of the stack whose newest approved package is not declared yet, each as its "
        "next v<N> (one commit per model with --write --commit; what the scheduled adopt.yml runs)",
    )
    p.add_argument(
        "--package",
        help="aws: a model package ARN (default or empty: the group's newest approved one); "
        "local: an artifact sha256 with a package record (default: the stack's current run)",
    )
    p.add_argument("--write", action="store_true", help="write the registry file")
    p.add_argument("--commit", action="store_true", help="with --write: commit the file alone, lineage in the message")
    p.set_defaults(func=cmd_adopt)


def cmd_adopt(args: Any) -> int:
    import difflib
    import sys

    from llmops.engine import stack_outputs
    from llmops.promote import PromotionError
    from llmops.registry import load_registry
    from llmops.settings import load_all_stacks

    if args.commit and not args.write:
        raise UserError("--commit needs --write")
    if args.pending == bool(args.model):
        raise UserError("name one MODEL, or give --pending for every model of the stack")
    if args.pending and (args.version or args.package):
        raise UserError("--pending names each version itself (the next v<N>) and adopts the newest approved package")
    if not args.pending and not args.version:
        raise UserError("give the new version's name: --version V (or --version auto for the next v<N>)")
    root = paths.repo_root()
    stacks = load_all_stacks(paths.stacks_dir(root))
    registry = load_registry(paths.models_dir(root), stacks)
    if args.model and args.model not in registry.models:
        raise UserError(f"no model {args.model!r} in {paths.models_dir(root).name}/")
    local = args.stack in stacks and stacks[args.stack].target == "local"
    if args.pending and local:
        raise UserError("--pending reads SageMaker packages: on a local stack adopt one MODEL")
    outputs = stack_outputs(args.stack, root)
    found = Pending([], [], [])
    if args.pending:
        import boto3

        found = pending(root, registry.models, outputs, boto3.client("sagemaker"), boto3.client("s3"))
    else:
        entry = registry.models[args.model]
        version = next_version(entry) if args.version == "auto" else args.version
        if local:
            found.adoptions.append(adopt_local(root, entry, version, outputs, args.package or None))
        else:
            import boto3

            sm, s3 = boto3.client("sagemaker"), boto3.client("s3")
            found.adoptions.append(adopt(root, entry, version, outputs, sm, s3, args.package or None))
    for note in [*found.passed_over, *found.refused]:
        print(note, file=sys.stderr)
    adoptions = found.adoptions
    for adoption in adoptions:
        display = str(adoption.path.relative_to(root))
        diff = difflib.unified_diff(
            adoption.before.splitlines(True), adoption.after.splitlines(True), f"a/{display}", f"b/{display}"
        )
        sys.stdout.write("".join(diff))
        print(adoption.message)
        if args.write:
            try:
                sha = write(root, adoption, args.commit)
            except PromotionError as exc:
                raise UserError(str(exc)) from None
            if sha:
                print(f"committed {sha[:12]}", file=sys.stderr)
    if args.pending and not adoptions:
        print(f"nothing to adopt in {args.stack}", file=sys.stderr)
    return 1 if found.refused else 0
