"""Filestore rules on their fixtures, and on manifests written by the tests."""

from __future__ import annotations

from pathlib import Path

import pytest
from tests.review.rule_cases import check_case, fixture_cases, rule_findings

from odoo_dr.review.engine import ReviewOptions, run_review
from odoo_dr.review.model import Finding, Severity

CASES = fixture_cases("FS-")
OFFLINE = ReviewOptions(live=False)


@pytest.mark.parametrize(("rule_id", "case"), CASES, ids=[f"{r}-{c}" for r, c in CASES])
def test_rule_fixture(materialize, rule_id, case):
    check_case(materialize, rule_id, case)


def review(folder: Path, files: dict[str, str], rule_id: str) -> list[Finding]:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    return rule_findings(run_review(folder, OFFLINE), rule_id)


def deployment(
    volumes: str = "", mounts: str = "", extra: str = "", replicas: int = 1
) -> str:
    text = (
        "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: odoo\n"
        f"spec:\n  replicas: {replicas}\n"
        "  selector:\n    matchLabels: {app: odoo}\n"
        "  template:\n    metadata:\n      labels: {app: odoo}\n    spec:\n"
        "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
    )
    text += extra
    if mounts:
        text += "          volumeMounts:\n" + mounts
    if volumes:
        text += "      volumes:\n" + volumes
    return text


def test_compose_without_volume_fails(tmp_path):
    findings = review(
        tmp_path,
        {"docker-compose.yml": "services:\n  odoo:\n    image: odoo:17.0\n"},
        "FS-001",
    )
    assert len(findings) == 1
    assert not findings[0].passed
    assert "container's own layer" in findings[0].outcome.message
    assert findings[0].location.line == 2


def test_compose_anonymous_volume_fails(tmp_path):
    findings = review(
        tmp_path,
        {
            "docker-compose.yml": "services:\n  odoo:\n    image: odoo:17.0\n"
            "    volumes:\n      - /var/lib/odoo\n"
        },
        "FS-001",
    )
    assert not findings[0].passed
    assert "anonymousVolume" in findings[0].outcome.message
    assert findings[0].location.line == 5


def test_compose_bind_mount_passes(tmp_path):
    findings = review(
        tmp_path,
        {
            "docker-compose.yml": "services:\n  odoo:\n    image: odoo:17.0\n"
            "    volumes:\n"
            "      - type: bind\n        source: ./data\n"
            "        target: /var/lib/odoo\n"
        },
        "FS-001",
    )
    assert [item.passed for item in findings] == [True]


def test_hostpath_fails_as_node_local(tmp_path):
    findings = review(
        tmp_path,
        {
            "odoo.yaml": deployment(
                volumes="        - name: data\n          hostPath: {path: /srv/odoo}\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n",
            )
        },
        "FS-001",
    )
    assert not findings[0].passed
    assert findings[0].severity == Severity.HIGH
    assert "stays on one node" in findings[0].outcome.message


def test_data_dir_from_command_line(tmp_path):
    findings = review(
        tmp_path,
        {
            "odoo.yaml": deployment(
                volumes="        - name: data\n          emptyDir: {}\n"
                "        - name: files\n          persistentVolumeClaim:\n"
                "            claimName: files\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n"
                "            - {name: files, mountPath: /srv/files}\n",
                extra='          args: ["-D", "/srv/files"]\n',
            )
        },
        "FS-001",
    )
    assert [item.passed for item in findings] == [True]
    assert "/srv/files" in findings[0].outcome.message


def test_object_storage_passes(tmp_path):
    findings = review(
        tmp_path,
        {
            "odoo.yaml": deployment(
                volumes="        - name: data\n          emptyDir: {}\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n",
                extra="          env:\n            - name: AWS_BUCKETNAME\n"
                "              value: acme-filestore\n",
                replicas=3,
            )
        },
        "FS-001",
    )
    assert [item.passed for item in findings] == [True]
    assert findings[0].location.line == 17


def test_server_wide_object_storage_module(tmp_path):
    files = {
        "odoo.conf": "[options]\nserver_wide_modules = base,web,attachment_s3\n",
        "docker-compose.yml": "services:\n  odoo:\n    image: odoo:16.0\n"
        "    deploy:\n      replicas: 2\n",
    }
    shared = review(tmp_path, files, "FS-002")
    assert [item.passed for item in shared] == [True]
    assert shared[0].location.file.endswith("odoo.conf")
    assert shared[0].location.line == 2


def test_claim_template_replicas_fail(tmp_path):
    statefulset = (
        "apiVersion: apps/v1\nkind: StatefulSet\nmetadata:\n  name: odoo\n"
        "spec:\n  replicas: 2\n  serviceName: odoo\n"
        "  selector:\n    matchLabels: {app: odoo}\n"
        "  template:\n    metadata:\n      labels: {app: odoo}\n    spec:\n"
        "      containers:\n        - name: odoo\n          image: odoo:17.0\n"
        "          volumeMounts:\n"
        "            - {name: data, mountPath: /var/lib/odoo}\n"
        "  volumeClaimTemplates:\n"
        "    - metadata: {name: data}\n"
        "      spec:\n        accessModes: [ReadWriteOnce]\n"
    )
    findings = review(tmp_path, {"odoo.yaml": statefulset}, "FS-002")
    assert len(findings) == 1
    assert not findings[0].passed
    assert "volumeClaimTemplate data" in findings[0].outcome.message
    assert findings[0].location.line == 20


def test_nfs_volume_shared(tmp_path):
    findings = review(
        tmp_path,
        {
            "odoo.yaml": deployment(
                volumes="        - name: data\n"
                "          nfs: {server: nas.example.com, path: /odoo}\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n",
                replicas=3,
            )
        },
        "FS-002",
    )
    assert [item.passed for item in findings] == [True]
    assert "share the nfs volume" in findings[0].outcome.message


def test_single_replica_not_checked(tmp_path):
    findings = review(
        tmp_path,
        {
            "odoo.yaml": deployment(
                volumes="        - name: data\n          emptyDir: {}\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n",
            )
        },
        "FS-002",
    )
    assert findings == []


def test_claim_outside_manifests_not_judged(tmp_path):
    findings = review(
        tmp_path,
        {
            "odoo.yaml": deployment(
                volumes="        - name: data\n          persistentVolumeClaim:\n"
                "            claimName: made-elsewhere\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n",
                replicas=2,
            )
        },
        "FS-002",
    )
    assert findings == []


def test_default_class_node_local(tmp_path):
    storage_class = (
        "apiVersion: storage.k8s.io/v1\nkind: StorageClass\nmetadata:\n"
        "  name: local\n  annotations:\n"
        '    storageclass.kubernetes.io/is-default-class: "true"\n'
        "provisioner: rancher.io/local-path\n"
        "---\n"
        "apiVersion: v1\nkind: PersistentVolumeClaim\nmetadata:\n  name: data\n"
        "spec:\n  accessModes: [ReadWriteOnce]\n"
    )
    findings = review(
        tmp_path,
        {
            "storage.yaml": storage_class,
            "odoo.yaml": deployment(
                volumes="        - name: data\n          persistentVolumeClaim:\n"
                "            claimName: data\n",
                mounts="            - {name: data, mountPath: /var/lib/odoo}\n",
            ),
        },
        "FS-003",
    )
    assert len(findings) == 1
    assert not findings[0].passed
    assert "rancher.io/local-path" in findings[0].outcome.message
    locations = [item.location for item in findings[0].outcome.evidence]
    assert locations[1].line == 1
    assert locations[1].file.endswith("storage.yaml")
