"""Secret values replaced by references in captured configuration files.

A reference names where the value lives, never the value:

- `<secret:odoo.conf:KEY>` for an odoo.conf option of `[options]`, and
  `<secret:odoo.conf:SECTION.KEY>` for an option of another section;
- `<secret:k8s:NAMESPACE/NAME/KEY>` for a value of a Kubernetes Secret
  (`default` when the manifest sets no namespace);
- `<secret:env:KIND/NAMESPACE/NAME/VARIABLE>` for a literal environment variable
  of a Kubernetes object, and `<secret:compose:SERVICE/VARIABLE>` for one of a
  docker-compose service.
"""

from __future__ import annotations

import re
from typing import Any

import yaml

# The line grammar of the review's odoo.conf reader, so both read the same options.
from odoo_dr.review.evidence.manifests import _OPTION as OPTION_LINE

# Odoo's own secret options, and the suffixes of options of modules that hold one.
ODOO_SECRET_KEYS = frozenset({"admin_passwd", "db_password", "smtp_password"})
ODOO_SECRET_SUFFIXES = ("_password", "_passwd", "_secret", "_token", "_key")
# Values that mean "unset" in odoo.conf, so there is nothing to hide.
UNSET_VALUES = frozenset({"", "false", "none"})
# The password of a URL such as db_uri's `postgresql://user:PASSWORD@host/db`.
URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.-]*://[^\s:/@]*:)[^\s@]+@")
# Environment variables whose literal value is taken for a secret. A name that
# ends in _FILE holds the path of a file with the secret, as official images read.
SECRET_VARIABLE = re.compile(
    r"(PASSWORD|PASSWD|SECRET|TOKEN|PRIVATE_KEY|API_KEY|ACCESS_KEY|CREDENTIAL|_KEY$)",
    re.IGNORECASE,
)
LAST_APPLIED = "kubectl.kubernetes.io/last-applied-configuration"
# Keys that set a secret in files without rules of their own: `requirepass` and
# `masterauth` of redis.conf, and names like those of SECRET_VARIABLE.
UNKNOWN_SECRET_KEY = re.compile(
    r"(pass(word|wd)?$|passw|secret|token|credential|auth$|api_?key|private_?key)",
    re.IGNORECASE,
)
# A rule of a Redis ACL (`user NAME on >PASSWORD` in redis.conf or an ACL file) that
# sets a password in clear or its SHA-256 (`#HEX`).
ACL_PASSWORD_RULE = re.compile(r"^\s*user\s+\S+.*\s[>#]\S", re.IGNORECASE)
# A `KEY VALUE` or `KEY = VALUE` line of a configuration file that is no odoo.conf.
KEY_LINE = re.compile(r"^\s*([A-Za-z_][\w.-]*)\s*(?:=|:|\s)\s*(\S.*)$")


def find_unknown_secret(text: str) -> str | None:
    """Return the key of the first line of a non-odoo.conf file that sets a secret.

    Such a file has no redaction rules, so the caller leaves it out.
    """
    if re.search(r"^\s*\[[^\]]+\]\s*$", text, re.MULTILINE):
        return None
    for line in text.splitlines():
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if ACL_PASSWORD_RULE.match(line):
            return "user"
        match = KEY_LINE.match(line)
        if match is None or not UNKNOWN_SECRET_KEY.search(match.group(1)):
            continue
        if match.group(2).strip().lower() not in UNSET_VALUES:
            return match.group(1)
    return None


def find_secret_key(node: Any, path: str = "") -> str | None:
    """Return the path of the first scalar under a secret-like key, else None."""
    if isinstance(node, dict):
        for key, value in node.items():
            where = f"{path}.{key}" if path else str(key)
            if isinstance(value, (dict, list)):
                found = find_secret_key(value, where)
                if found:
                    return found
            elif (
                UNKNOWN_SECRET_KEY.search(str(key)) or _is_secret_variable(str(key))
            ) and str(value if value is not None else "").lower() not in UNSET_VALUES:
                return where
    elif isinstance(node, list):
        for index, item in enumerate(node):
            found = find_secret_key(item, f"{path}[{index}]")
            if found:
                return found
    return None


def reference(kind: str, name: str) -> str:
    return f"<secret:{kind}:{name}>"


def is_secret_option(key: str) -> bool:
    lowered = key.lower()
    return lowered in ODOO_SECRET_KEYS or lowered.endswith(ODOO_SECRET_SUFFIXES)


def redact_odoo_conf(text: str) -> tuple[str, list[str]]:
    """Replace the secret values of odoo.conf `text`; return it and the references.

    Every line other than a secret option's value is kept byte for byte.
    """
    references: list[str] = []
    lines = text.splitlines(keepends=True)
    section = None
    for index, line in enumerate(lines):
        body = line.rstrip("\r\n")
        stripped = body.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        if stripped.startswith("[") and stripped.endswith("]"):
            section = stripped[1:-1].strip()
            continue
        match = OPTION_LINE.match(body)
        if match is None:
            continue
        key, value = match.group(1), match.group(2)
        name = key if section == "options" else f"{section}.{key}"
        marker = reference("odoo.conf", name)
        if is_secret_option(key) and value.strip().lower() not in UNSET_VALUES:
            replaced = marker
        else:
            replaced = URL_PASSWORD.sub(rf"\g<head>{marker}@", value)
        if replaced == value:
            continue
        references.append(marker)
        start, end = match.span(2)
        lines[index] = body[:start] + replaced + body[end:] + line[len(body) :]
    return "".join(lines), references


def _plain(node: Any) -> Any:
    """Copy the review's line-keeping YAML values into plain dicts, lists and str."""
    if isinstance(node, dict):
        return {_plain(key): _plain(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_plain(item) for item in node]
    if isinstance(node, str):
        return str(node)
    return node


def _redact_secret(document: dict, references: list[str]) -> None:
    metadata = document.get("metadata") if isinstance(document, dict) else None
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = str(metadata.get("namespace") or "default")
    name = str(metadata.get("name", ""))
    for section in ("data", "stringData"):
        values = document.get(section)
        if not isinstance(values, dict):
            continue
        for key, value in values.items():
            if value is None:
                continue
            marker = reference("k8s", f"{namespace}/{name}/{key}")
            values[key] = marker
            references.append(marker)
    # kubectl copies the whole object, data included, into this annotation.
    annotations = metadata.get("annotations")
    if isinstance(annotations, dict) and LAST_APPLIED in annotations:
        marker = reference("k8s", f"{namespace}/{name}/{LAST_APPLIED}")
        annotations[LAST_APPLIED] = marker
        references.append(marker)


def _redact_env(node: Any, prefix: str, references: list[str]) -> None:
    """Replace secret-named literal `env` values anywhere below `node`."""
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "env" and isinstance(value, list):
                for item in value:
                    _redact_variable(item, prefix, references)
            else:
                _redact_env(value, prefix, references)
    elif isinstance(node, list):
        for item in node:
            _redact_env(item, prefix, references)


def _redact_variable(item: Any, prefix: str, references: list[str]) -> None:
    if not isinstance(item, dict) or not isinstance(item.get("value"), str):
        return
    name = str(item.get("name", ""))
    if not item["value"] or not _is_secret_variable(name):
        return
    marker = reference("env", f"{prefix}/{name}")
    item["value"] = marker
    references.append(marker)


def _is_secret_variable(name: str) -> bool:
    return bool(SECRET_VARIABLE.search(name)) and not name.upper().endswith("_FILE")


def _redact_compose(document: dict, references: list[str]) -> None:
    for service_name, service in document["services"].items():
        if not isinstance(service, dict):
            continue
        raw = service.get("environment")
        if isinstance(raw, dict):
            for name, value in raw.items():
                if _compose_secret(str(name), value):
                    marker = reference("compose", f"{service_name}/{name}")
                    raw[name] = marker
                    references.append(marker)
        elif isinstance(raw, list):
            for index, item in enumerate(raw):
                name, equals, value = str(item).partition("=")
                if equals and _compose_secret(name, value):
                    marker = reference("compose", f"{service_name}/{name}")
                    raw[index] = f"{name}={marker}"
                    references.append(marker)
        for field in ("command", "entrypoint"):
            if isinstance(service.get(field), list):
                _redact_arguments(service[field], service_name, references)


def _redact_arguments(arguments: list, service: str, references: list[str]) -> None:
    """Replace the value of `--requirepass X` or `--password=X` in a command list."""
    for index, item in enumerate(arguments):
        flag, equals, value = str(item).partition("=")
        if not flag.startswith("-"):
            continue
        if not UNKNOWN_SECRET_KEY.search(flag.lstrip("-")):
            continue
        marker = reference("compose", f"{service}/{flag.lstrip('-')}")
        if equals and value:
            arguments[index] = f"{flag}={marker}"
            references.append(marker)
        elif not equals and index + 1 < len(arguments):
            arguments[index + 1] = marker
            references.append(marker)


def _compose_secret(name: str, value: Any) -> bool:
    # `${VAR}` is read from the shell at `docker compose up`, so it is no secret.
    text = "" if value is None else str(value)
    return bool(text) and "$" not in text and _is_secret_variable(name)


def _redact_object(document: dict, references: list[str]) -> None:
    kind = str(document.get("kind"))
    if kind.endswith("List") and isinstance(document.get("items"), list):
        for item in document["items"]:
            if isinstance(item, dict):
                _redact_object(item, references)
        return
    if kind == "Secret":
        _redact_secret(document, references)
        return
    metadata = document.get("metadata")
    metadata = metadata if isinstance(metadata, dict) else {}
    namespace = str(metadata.get("namespace") or "default")
    prefix = f"{kind}/{namespace}/{metadata.get('name', '')}"
    _redact_env(document, prefix, references)
    if kind == "ConfigMap" and isinstance(document.get("data"), dict):
        data = document["data"]
        for key, value in data.items():
            if isinstance(value, str) and "[options]" in value:
                data[key], found = redact_odoo_conf(value)
                references += found


class UnknownSecret(ValueError):
    """A document without redaction rules sets a value under a secret-like key."""


def redact_yaml_documents(documents: list[Any]) -> tuple[str | None, list[str]]:
    """Replace the secrets in the documents of one YAML file.

    Return the file written again with the secrets replaced, or None when the file
    has no secret (so its text can be kept byte for byte), and the references.
    The text written again loses the file's comments and layout. Raises
    `UnknownSecret` for a document that is neither a Kubernetes object nor a
    compose file and sets a value under a secret-like key.
    """
    references: list[str] = []
    plain = [_plain(document) for document in documents]
    for document in plain:
        if not isinstance(document, dict):
            continue
        if "kind" in document and "apiVersion" in document:
            _redact_object(document, references)
        elif isinstance(document.get("services"), dict):
            _redact_compose(document, references)
        elif (key := find_secret_key(document)) is not None:
            raise UnknownSecret(key)
    if not references:
        return None, []
    text = yaml.safe_dump_all(plain, sort_keys=False, allow_unicode=True)
    return text, references
