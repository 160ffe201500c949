"""The configuration an environment runs with, captured with each platform backup.

A recovery after the loss of a region must apply the configuration that ran at
backup time: the Git commit of the manifests, the manifest files themselves, the
routes in front of Odoo and each odoo.conf. Secrets are replaced by references
(see `odoo_dr.platform.redaction` and docs/platform.md), so the captured state can
be stored, printed and written back without exposing them.
"""

from __future__ import annotations

import hashlib
import logging
import os
import re
import subprocess
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from pydantic import BaseModel, Field, ValidationError

from odoo_dr.errors import RejectedError, RepositoryError, SnapshotDamaged
from odoo_dr.platform.redaction import (
    UnknownSecret,
    find_unknown_secret,
    redact_odoo_conf,
    redact_yaml_documents,
)
from odoo_dr.repository.local import FILE_MODE, make_private_folder
from odoo_dr.repository.store import Repository
from odoo_dr.review.evidence.manifests import YAML_SUFFIXES, load_manifests
from odoo_dr.review.evidence.routes import Route, load_routes
from odoo_dr.review.inventory import Environment
from odoo_dr.review.yamlio import YamlError, load_valid_documents, read_text

log = logging.getLogger(__name__)

FORMAT = 1
CONFIG_PREFIX = "platform/config/"
# Record ids become one path element of a repository key.
_RECORD_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")
GIT_TIMEOUT = 60


class GitState(BaseModel):
    """The Git work tree holding some of the manifests, at capture time."""

    work_tree: str = Field(
        description="relative to the inventory folder when below it, else absolute"
    )
    folders: list[str] = Field(description="the evidence paths in this work tree")
    commit: str
    dirty: bool
    # `git status --porcelain` lines: changed and untracked files.
    changes: list[str] = Field(default_factory=list)


class ConfigFile(BaseModel):
    """A captured file, relative to the inventory folder, secrets replaced."""

    path: str
    content: str
    sha256: str = Field(description="of `content` as stored, UTF-8 encoded")
    # Set when secrets were replaced, so `content` differs from the file on disk.
    references: list[str] = Field(default_factory=list)


class RouteSummary(BaseModel):
    kind: str = Field(description="Ingress, IngressRoute or Traefik labels")
    resource: str
    file: str
    hosts: list[str] = Field(default_factory=list)
    paths: list[str] = Field(
        default_factory=list, description="`KIND VALUE`: prefix, string, exact, regex"
    )
    service: str | None = None
    port: int | str | None = None
    # What denies the route at the proxy itself, such as an nginx snippet.
    blocked_by: str | None = None

    def line(self) -> str:
        hosts = ",".join(self.hosts) or "*"
        paths = ",".join(self.paths) or "*"
        port = f":{self.port}" if self.port is not None else ""
        backend = f"{self.service or '-'}{port}"
        if self.blocked_by:
            backend = f"blocked by {self.blocked_by}"
        return (
            f"{self.kind} {self.resource} host={hosts} path={paths} "
            f"-> {backend} ({self.file})"
        )


class ConfigurationState(BaseModel):
    """The configuration of one environment at capture time, no secret in clear."""

    format: int = FORMAT
    environment: str
    captured_at: datetime
    git_repository: str | None = Field(
        default=None, description="where the inventory says the manifests are kept"
    )
    # None when the manifests are in no Git work tree.
    git: list[GitState] | None = None
    manifests: list[ConfigFile] = Field(default_factory=list)
    odoo_confs: list[ConfigFile] = Field(default_factory=list)
    routes: list[RouteSummary] = Field(default_factory=list)
    # Files that were not captured, and why.
    problems: list[str] = Field(default_factory=list)

    @property
    def commit(self) -> str | None:
        """Return the commit of the manifests when they are all in one work tree."""
        if self.git is None or len(self.git) != 1:
            return None
        return self.git[0].commit


def _sha256(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _relative(path: Path, folder: Path) -> str:
    return path.resolve().relative_to(folder).as_posix()


def _evidence_paths(
    folder: Path, environment: Environment, entries: list[str]
) -> list[Path]:
    """Resolve evidence `entries` below `folder`, rejecting any missing or outside."""
    paths = []
    for entry in entries:
        path = (folder / entry).resolve()
        try:
            path.relative_to(folder)
        except ValueError:
            raise RejectedError(
                f"evidence path {entry!r} of environment {environment.name!r} is "
                f"outside the inventory folder {folder}",
                hint="keep the manifests and odoo.conf files below the folder of "
                "the inventory, so their paths can be written back",
            ) from None
        if not path.exists():
            raise RejectedError(
                f"evidence path {entry!r} of environment {environment.name!r} not "
                f"found: {path} does not exist",
                hint="fix the path in the inventory's evidence, or restore the "
                "folder before capturing the configuration",
            )
        paths.append(path)
    return paths


def _git(folder: Path, *arguments: str) -> subprocess.CompletedProcess[str] | None:
    """Run git in `folder`; None when git cannot be run (which is logged)."""
    # Without optional locks `git status` does not write the index.
    environment = {**os.environ, "GIT_OPTIONAL_LOCKS": "0"}
    try:
        return subprocess.run(
            ["git", "-C", str(folder), *arguments],
            capture_output=True,
            text=True,
            timeout=GIT_TIMEOUT,
            check=False,
            env=environment,
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        log.warning("cannot run git in %s: %s", folder, exc)
        return None


def _git_state(path: Path) -> tuple[str, str, bool, list[str]] | None:
    """Return the work tree, commit, dirtiness and changes of `path`'s Git work
    tree, or None when it is in none."""
    folder = path if path.is_dir() else path.parent
    head = _git(folder, "rev-parse", "--show-toplevel", "HEAD")
    if head is None:
        return None
    if head.returncode != 0:
        log.info(
            "%s is not in a Git work tree with a commit: %s",
            folder,
            head.stderr.strip() or f"git exit {head.returncode}",
        )
        return None
    top, commit = head.stdout.split()[:2]
    status = _git(folder, "status", "--porcelain")
    if status is None or status.returncode != 0:
        reason = status.stderr.strip() if status is not None else "git failed"
        raise RejectedError(
            f"git status failed in {folder}: {reason}",
            hint="check that the work tree is readable and not locked",
        )
    changes = [line for line in status.stdout.splitlines() if line]
    return top, commit, bool(changes), changes


def _capture_git(
    folder: Path, entries: list[str], paths: list[Path]
) -> list[GitState] | None:
    states: dict[str, GitState] = {}
    for entry, path in zip(entries, paths, strict=True):
        found = _git_state(path)
        if found is None:
            continue
        top, commit, dirty, changes = found
        state = states.get(top)
        if state is None:
            try:
                work_tree = Path(top).resolve().relative_to(folder).as_posix()
            except ValueError:
                work_tree = Path(top).resolve().as_posix()
            state = GitState(
                work_tree=work_tree,
                folders=[],
                commit=commit,
                dirty=dirty,
                changes=changes,
            )
            states[top] = state
        state.folders.append(entry)
    return list(states.values()) or None


def _route_summary(route: Route, folder: Path) -> RouteSummary:
    file = Path(route.location.file)
    try:
        shown = _relative(file, folder)
    except ValueError:
        shown = file.as_posix()
    return RouteSummary(
        kind=route.kind,
        resource=route.resource,
        file=shown,
        hosts=[*route.hosts, *route.host_patterns],
        paths=[f"{item.kind} {item.value}" for item in route.paths],
        service=route.service,
        port=route.port,
        blocked_by=route.blocked_by,
    )


def _capture_file(path: Path, folder: Path) -> tuple[ConfigFile | None, str | None]:
    """Read one file with its secrets replaced; or None and why it was skipped."""
    relative = _relative(path, folder)
    try:
        text = read_text(path)
    except YamlError as exc:
        return None, f"{relative}: {exc.message}"
    if path.suffix.lower() == ".conf":
        key = find_unknown_secret(text)
        if key is not None:
            return None, _unknown_secret(relative, key)
        content, references = redact_odoo_conf(text)
        return ConfigFile(
            path=relative,
            content=content,
            sha256=_sha256(content),
            references=references,
        ), None
    documents, errors = load_valid_documents(path)
    if errors:
        # An invalid document may hold a secret that cannot be found in it.
        return None, (
            f"{relative}: not captured, line {errors[0].location.line}: "
            f"{errors[0].message}"
        )
    try:
        redacted, references = redact_yaml_documents(documents)
    except UnknownSecret as exc:
        return None, _unknown_secret(relative, str(exc))
    content = text if redacted is None else redacted
    return ConfigFile(
        path=relative, content=content, sha256=_sha256(content), references=references
    ), None


def _unknown_secret(relative: str, key: str) -> str:
    return (
        f"{relative}: not captured, {key} looks like a secret that odoo-dr cannot "
        "replace by a reference in this kind of file"
    )


def capture_configuration(
    inventory_folder: Path, environment: Environment
) -> ConfigurationState:
    """Capture the configuration of `environment` from the files its inventory names.

    Raise RejectedError when an evidence path is missing or outside
    `inventory_folder`. Files that cannot be read, unrendered Helm charts and
    invalid YAML files are left out and listed in `problems`.
    """
    folder = inventory_folder.resolve()
    sources = environment.evidence
    manifest_entries = [*sources.manifests, *sources.compose]
    manifest_paths = _evidence_paths(folder, environment, manifest_entries)
    conf_paths = _evidence_paths(folder, environment, sources.odoo_conf)

    manifests = load_manifests(manifest_paths, conf_paths, root=folder)
    state = ConfigurationState(
        environment=environment.name,
        captured_at=datetime.now(UTC),
        git_repository=sources.git_repository,
        git=_capture_git(folder, manifest_entries, manifest_paths),
        routes=[
            _route_summary(route, folder) for route in load_routes(manifests).routes
        ],
    )

    # Each file once: an odoo.conf below a manifest folder counts as an odoo.conf.
    conf_files = {path.resolve() for path in conf_paths}
    chart_files = {item for files in manifests.charts.values() for item in files}
    manifest_files = [
        Path(item)
        for item in manifests.files
        if item not in chart_files
        and Path(item).resolve() not in conf_files
        and Path(item).suffix.lower() in (*YAML_SUFFIXES, ".conf")
    ]
    for path, into in [
        *((path, state.manifests) for path in manifest_files),
        *((path, state.odoo_confs) for path in sorted(conf_files)),
    ]:
        captured, problem = _capture_file(path, folder)
        if captured is not None:
            into.append(captured)
        else:
            state.problems.append(problem)
    state.problems += [
        problem for problem in manifests.problems if problem not in state.problems
    ]
    log.info(
        "captured configuration environment=%s manifests=%d odoo_confs=%d routes=%d "
        "commit=%s",
        environment.name,
        len(state.manifests),
        len(state.odoo_confs),
        len(state.routes),
        state.commit,
    )
    return state


def configuration_key(record_id: str) -> str:
    """Return the repository key of the configuration of platform record
    `record_id`."""
    if _RECORD_ID.match(record_id) is None or ".." in record_id:
        raise RejectedError(
            f"invalid platform record id {record_id!r}",
            hint="use letters, digits, '.', '_' and '-', as the ids odoo-dr "
            "generates do",
        )
    return f"{CONFIG_PREFIX}{record_id}.json"


def save_configuration(
    repository: Repository, state: ConfigurationState, record_id: str
) -> str:
    """Store `state` as a document of `repository`, sealed when it is encrypted;
    return its key."""
    key = configuration_key(record_id)
    repository.write_document(key, state.model_dump_json(indent=1).encode("utf-8"))
    log.info(
        "stored configuration environment=%s key=%s files=%d",
        state.environment,
        key,
        len(state.manifests) + len(state.odoo_confs),
    )
    return key


def load_configuration(repository: Repository, key: str) -> ConfigurationState:
    """Read the configuration stored under `key` and check each file's SHA-256.

    Raise `ObjectNotFound` when there is none, and SnapshotDamaged when it cannot
    be read or a file's content does not match its SHA-256.
    """
    raw = repository.read_document(key)
    try:
        state = ConfigurationState.model_validate_json(raw)
    except ValidationError as exc:
        raise SnapshotDamaged(
            f"configuration {repository.location}/{key} is damaged: "
            f"{exc.errors()[0]['msg']}",
            hint="run 'odoo-dr verify', and use the configuration of another "
            "platform backup",
        ) from None
    if state.format != FORMAT:
        raise RepositoryError(
            f"configuration {repository.location}/{key} has format {state.format}, "
            f"this odoo-dr reads format {FORMAT}",
            hint="read it with the odoo-dr version that wrote it",
        )
    for item in [*state.manifests, *state.odoo_confs]:
        if _sha256(item.content) != item.sha256:
            raise SnapshotDamaged(
                f"configuration {repository.location}/{key} is damaged: the "
                f"content of {item.path} does not match its SHA-256",
                hint="run 'odoo-dr verify', and use the configuration of another "
                "platform backup",
            )
    return state


def _target(folder: Path, relative: str) -> Path:
    """Return where `relative` goes below `folder`, rejecting paths that escape it."""
    pure = PurePosixPath(relative)
    if (
        not relative
        or pure.is_absolute()
        or "\\" in relative
        or any(part in ("..", "") for part in relative.split("/"))
    ):
        raise RejectedError(
            f"invalid path {relative!r} in the configuration: it is absolute or "
            "leaves the target folder",
            hint="the configuration is damaged or was not written by odoo-dr: use "
            "another platform backup",
        )
    target = folder.joinpath(*pure.parts)
    # A symbolic link already in the folder must not lead the write outside it.
    if not target.resolve().is_relative_to(folder):
        raise RejectedError(
            f"path {relative!r} leads outside {folder} through a symbolic link",
            hint="write the configuration into an empty folder",
        )
    return target


def _commit_text(state: ConfigurationState) -> str:
    if state.git is None:
        return "none: the manifests were in no Git work tree\n"
    lines = []
    for item in state.git:
        mark = "dirty" if item.dirty else "clean"
        lines.append(f"{item.commit} {mark} {item.work_tree} {' '.join(item.folders)}")
        lines += [f"  {change}" for change in item.changes]
    return "\n".join(lines) + "\n"


def write_configuration(state: ConfigurationState, folder: Path) -> list[Path]:
    """Write the captured files below `folder` at their paths, with `routes.txt`
    and `COMMIT`; return the paths written.

    Every path is checked before anything is written. odoo.conf files keep the
    secret references in place of the values.
    """
    root = folder.resolve()
    files = [
        (_target(root, item.path), item.content)
        for item in [*state.manifests, *state.odoo_confs]
    ]
    routes = "".join(f"{route.line()}\n" for route in state.routes)
    files += [(root / "routes.txt", routes), (root / "COMMIT", _commit_text(state))]

    written = []
    make_private_folder(root)
    for target, content in files:
        make_private_folder(target.parent)
        # Owner-only whatever the umask: odoo.conf and manifests describe the
        # platform's access even with their secrets replaced by references.
        fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        with os.fdopen(fd, "wb") as handle:
            handle.write(content.encode("utf-8"))
        os.chmod(target, FILE_MODE)
        written.append(target)
    log.info(
        "wrote configuration environment=%s folder=%s files=%d",
        state.environment,
        root,
        len(written),
    )
    return written
