"""Data residency: where a snapshot may be stored, and whether a region qualifies.

A snapshot's `residency` is a comma-separated list of terms. The term `eu` admits
regions located in the European Union; any other term is a region name and admits
that region only. A repository's region is a name its operator declares with
`odoo-dr init --region`, spelled as the storage provider spells it.

Region names are matched by name alone, since odoo-dr cannot see where a provider
keeps the bytes. A name counts as located in the EU when it is listed in
`EU_REGIONS`, or when it starts with `eu-` and is not listed in
`EU_NAMED_OUTSIDE_EU`.
"""

from __future__ import annotations

import re

from odoo_dr.errors import RejectedError

EU = "eu"

# Region names of common providers whose data centres are in EU member states.
EU_REGIONS = frozenset(
    {
        # Amazon Web Services
        "eu-west-1",  # Ireland
        "eu-west-3",  # Paris
        "eu-central-1",  # Frankfurt
        "eu-north-1",  # Stockholm
        "eu-south-1",  # Milan
        "eu-south-2",  # Spain
        # Google Cloud
        "europe-west1",  # Belgium
        "europe-west3",  # Frankfurt
        "europe-west4",  # Netherlands
        "europe-west8",  # Milan
        "europe-west9",  # Paris
        "europe-west10",  # Berlin
        "europe-west12",  # Turin
        "europe-north1",  # Finland
        "europe-central2",  # Warsaw
        "europe-southwest1",  # Madrid
        # Microsoft Azure
        "westeurope",  # Netherlands
        "northeurope",  # Ireland
        "francecentral",
        "germanywestcentral",
        "swedencentral",
        "italynorth",
        "polandcentral",
        "spaincentral",
        # Scaleway
        "fr-par",
        "nl-ams",
        "pl-waw",
        # Hetzner
        "fsn1",  # Falkenstein
        "nbg1",  # Nuremberg
        "hel1",  # Helsinki
        # OVHcloud
        "gra",  # Gravelines
        "sbg",  # Strasbourg
        "rbx",  # Roubaix
        "de",  # Frankfurt
        "waw",  # Warsaw
        # DigitalOcean
        "ams3",  # Amsterdam
        "fra1",  # Frankfurt
    }
)

# Names that start with `eu-` but whose data centres are outside the EU.
EU_NAMED_OUTSIDE_EU = {
    "eu-west-2": "London, United Kingdom (AWS)",
    "eu-central-2": "Zurich, Switzerland (AWS)",
}

_TERM = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")


def normalize_region(value: str) -> str:
    """Return a declared region name in lower case, or raise `RejectedError`."""
    region = value.strip().lower()
    if not _TERM.match(region):
        raise RejectedError(
            f"invalid region {value!r}",
            hint="give the provider's region name, such as eu-west-1, fr-par or fsn1 "
            "(letters, digits and hyphens)",
        )
    return region


def normalize_residency(value: str) -> str:
    """Return a residency as sorted, lower-case, comma-separated terms.

    Raises `RejectedError` for an empty or malformed term.
    """
    terms = [term.strip().lower() for term in value.split(",")]
    bad = [term for term in terms if not _TERM.match(term)]
    if bad:
        raise RejectedError(
            f"invalid residency {value!r}",
            hint="give 'eu', a region name such as fr-par, or several of them "
            "separated by commas",
        )
    return ",".join(sorted(set(terms)))


def in_eu(region: str) -> bool:
    """Return whether a region name counts as located in the European Union."""
    region = region.lower()
    if region in EU_REGIONS:
        return True
    return region.startswith("eu-") and region not in EU_NAMED_OUTSIDE_EU


def admits(residency: str, region: str | None) -> bool:
    """Return whether data of `residency` may be stored in `region`.

    A repository without a declared region admits no residency, because its
    location is unknown.
    """
    if region is None:
        return False
    region = region.lower()
    for term in residency.lower().split(","):
        term = term.strip()
        if term == EU and in_eu(region):
            return True
        if term == region:
            return True
    return False
