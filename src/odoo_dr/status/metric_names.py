"""The names of the metrics that `odoo-dr serve` exports.

The exporter, the alerting rules of `odoo-dr alerts render` and the dashboard of
`odoo-dr grafana render` use these constants, so the three agree on every name. All
are gauges except `STATUS_REFRESH_ERRORS_TOTAL`, a counter.

Labels:
- tenant metrics: `environment` (empty for a tenant found in a repository but not in
  the inventory), `tenant` and `tier` (empty when unknown). `TENANT_INFO` adds
  `repository`, and `OBJECTIVE_MET` adds `objective`;
- repository metrics: `repository`, the location without credentials;
- pgBackRest metrics: `environment`, `stanza`;
- review metrics: `environment`, `tier`, except `REVIEW_TIMESTAMP_SECONDS`, which has
  none;
- the server's own metrics have no labels.
"""

from __future__ import annotations

# Tenants. `TENANT_INFO` is 1 for every tenant that the server reports.
TENANT_INFO = "odoo_dr_tenant_info"
LAST_SNAPSHOT_TIMESTAMP_SECONDS = "odoo_dr_last_snapshot_timestamp_seconds"
# Recomputed at scrape time from the snapshot's timestamp.
LAST_SNAPSHOT_AGE_SECONDS = "odoo_dr_last_snapshot_age_seconds"
LAST_SNAPSHOT_SIZE_BYTES = "odoo_dr_last_snapshot_size_bytes"
LAST_SNAPSHOT_NEW_BYTES = "odoo_dr_last_snapshot_new_bytes"
LAST_SNAPSHOT_MISSING_FILES = "odoo_dr_last_snapshot_missing_files"
SNAPSHOTS = "odoo_dr_snapshots"
BACKUP_INTERVAL_SECONDS = "odoo_dr_backup_interval_seconds"
DRILL_INTERVAL_SECONDS = "odoo_dr_drill_interval_seconds"
# The logical-corruption objectives.
OBJECTIVE_RTO_SECONDS = "odoo_dr_objective_rto_seconds"
OBJECTIVE_RPO_SECONDS = "odoo_dr_objective_rpo_seconds"
LAST_DRILL_TIMESTAMP_SECONDS = "odoo_dr_last_drill_timestamp_seconds"
LAST_DRILL_AGE_SECONDS = "odoo_dr_last_drill_age_seconds"
# 1 when the last drill passed, 0 when it failed.
LAST_DRILL_SUCCESS = "odoo_dr_last_drill_success"
LAST_DRILL_RTO_SECONDS = "odoo_dr_last_drill_rto_seconds"
LAST_DRILL_RPO_SECONDS = "odoo_dr_last_drill_rpo_seconds"
# 1 met, 0 not, absent when nothing measures it; label `objective` is one of
# OBJECTIVES.
OBJECTIVE_MET = "odoo_dr_objective_met"
OBJECTIVES = ("backup_fresh", "rpo", "rto", "drill")

# Repositories.
REPOSITORY_UP = "odoo_dr_repository_up"
REPOSITORY_STORED_BYTES = "odoo_dr_repository_stored_bytes"
REPOSITORY_LOGICAL_BYTES = "odoo_dr_repository_logical_bytes"
REPOSITORY_DEDUP_RATIO = "odoo_dr_repository_dedup_ratio"
REPOSITORY_SNAPSHOTS = "odoo_dr_repository_snapshots"
# Snapshot manifests and drill records that could not be read.
REPOSITORY_DAMAGED_DOCUMENTS = "odoo_dr_repository_damaged_documents"

# pgBackRest stanzas.
PITR_WINDOW_START_TIMESTAMP_SECONDS = "odoo_dr_pitr_window_start_timestamp_seconds"
PITR_WINDOW_END_TIMESTAMP_SECONDS = "odoo_dr_pitr_window_end_timestamp_seconds"
PITR_ARCHIVE_AGE_SECONDS = "odoo_dr_pitr_archive_age_seconds"
# 1 when the WAL chain has a gap.
PITR_WAL_GAP = "odoo_dr_pitr_wal_gap"

# The review's scorecard.
REVIEW_SCORE = "odoo_dr_review_score"
REVIEW_OBJECTIVES_MET = "odoo_dr_review_objectives_met"
REVIEW_TIMESTAMP_SECONDS = "odoo_dr_review_timestamp_seconds"

# The server itself.
STATUS_REFRESH_TIMESTAMP_SECONDS = "odoo_dr_status_refresh_timestamp_seconds"
STATUS_REFRESH_DURATION_SECONDS = "odoo_dr_status_refresh_duration_seconds"
STATUS_REFRESH_ERRORS_TOTAL = "odoo_dr_status_refresh_errors_total"

ALL: frozenset[str] = frozenset(
    value
    for name, value in dict(globals()).items()
    if name.isupper() and isinstance(value, str) and value.startswith("odoo_dr_")
)
