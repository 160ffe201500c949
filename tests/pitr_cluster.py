"""A PostgreSQL cluster of a test's own, made with initdb and archived by pgBackRest.

The cluster is the benchmarks' (benchmarks/benchlib/pitr_cluster.py) with fsync off,
since a test's cluster is thrown away. PostgreSQL refuses to run as root, so when
the tests run as root the cluster and pgBackRest run as the `postgres` OS user, in
a folder under /var/tmp that it owns (pytest's own temporary folders are closed to
other users).
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))

from benchlib.pitr_cluster import BenchCluster  # noqa: E402

CIPHER_PASS = "test-cipher-passphrase-0123456789abcdef"


@dataclass
class Cluster(BenchCluster):
    """One initdb cluster listening on 127.0.0.1:`port` and on its own socket."""

    stanza: str = "test"
    fsync: bool = False
    prefix: str = "odoo-dr-pitr-"
