"""The README.md written into every new repository."""

REPOSITORY_README = """\
# odoo-dr repository

This folder is an odoo-dr backup repository. `odoo-dr restore` and `odoo-dr drill`
need nothing but this folder. If odoo-dr itself is lost, the data can be read with
`jq`, `zstd` and PostgreSQL's `pg_restore`:

- `config.json`: format and version of this repository.
- `snapshots/<id>.json`: one manifest per complete snapshot. A manifest exists only
  once every chunk it names was written.
- `catalog/<time>-<random>-<hash>.json`: summaries of the snapshots, so that
  odoo-dr lists them without reading every manifest. Not needed to restore: the
  manifests are the truth, and odoo-dr rebuilds the catalog from them.
- `packs/<first 2 hex>/<sha256>`: pack files, named by the SHA-256 of their bytes.
  A pack starts with a header (a zstd skippable frame holding JSON), then holds one
  zstd frame per chunk: `zstd -dc < pack` prints the chunks one after the other.
- `index/<time>-<hash>.json`: for each pack, its chunks as [id, offset, length,
  size]: the chunk with SHA-256 `id` is the `length` bytes at byte `offset` of the
  pack, and decompresses to `size` bytes. When two index files name one chunk, the
  newer file (by name) counts.
- A file is the concatenation of its chunks, in the order that its `chunks` list
  gives.

Rebuild the database dump of a snapshot (pg_dump directory format) in `$out/dump`
and restore it as the database `restored`. The two shell blocks below make one bash
script (they use bash arrays, `${2:0:2}` and `$'\\t'`): save both to a file, set the
three paths on its second line (spaces in them are fine) and run it with `bash FILE`.
Looking chunks up with grep needs only standard tools, but takes about a minute per
ten thousand chunks.

    set -euo pipefail
    repo='/path/to/this/repository'; snap="$repo/snapshots/<id>.json"; out='/restore'
    export LC_ALL=C
    mkdir -p "$out/dump"
    # Newest index file first, so that the newer entry of a chunk listed twice counts.
    index=("$repo"/index/*.json)
    for ((i = ${#index[@]} - 1; i >= 0; i--)); do
      jq -r '.packs[] | .id as $p | .blobs[] | [.[0], $p, .[1], .[2]] | @tsv' \\
        "${index[i]}"
    done | sort -s -u -k1,1 > "$out/chunks.tsv"
    chunk() {
      local found
      found=$(grep -m1 "^$1"$'\\t' "$out/chunks.tsv") ||
        { echo "chunk $1 is in no index file" >&2; return 1; }
      set -- $found
      dd if="$repo/packs/${2:0:2}/$2" iflag=skip_bytes,count_bytes skip="$3" \\
        count="$4" bs=1M status=none | zstd -dc
    }
    jq -r '.dump[] | [.name, (.chunks | join(" "))] | @tsv' "$snap" |
      while IFS=$'\\t' read -r name chunks; do
        for c in $chunks; do chunk "$c"; done > "$out/dump/$name"
      done
    createdb -T template0 -E "$(jq -r .database.encoding "$snap")" \\
      --lc-collate="$(jq -r .database.collate "$snap")" \\
      --lc-ctype="$(jq -r .database.ctype "$snap")" restored
    pg_restore --no-owner --no-privileges -d restored "$out/dump"

Rebuild the filestore in `$out/filestore`: the manifest's `filestore.index.chunks`
make a JSON list of files (`path`, `sha1`, `size`, `chunks`), each written the same
way. Copy the result to `<filestore root>/<database>/`. A path holding a backslash,
tab or newline comes out escaped by jq's `@tsv`; the file names Odoo itself writes
never hold one.

    for c in $(jq -r '.filestore.index.chunks[]' "$snap"); do chunk "$c"; done \\
      > "$out/index.json"
    jq -r '.[] | [.path, (.chunks | join(" "))] | @tsv' "$out/index.json" |
      while IFS=$'\\t' read -r path chunks; do
        mkdir -p "$out/filestore/$(dirname "$path")"
        for c in $chunks; do chunk "$c"; done > "$out/filestore/$path"
      done

`drills/` holds one JSON record per restore drill, `releases/` one restore point
per release (written by `odoo-dr guard pre-deploy`), `platform/config/` the
configuration of an environment per platform backup (secrets replaced by
references), `locks/` the locks of running backups and prune, `tmp/` writes in
progress. Never edit files here by hand.
"""

# The by-hand reader of an encrypted repository. docs/encryption.md shows the same
# script, and a test runs it against a real encrypted repository.
RECOVERY_SCRIPT = '''\
"""Read an encrypted odoo-dr repository without odoo-dr.

Usage: python3 recover.py REPOSITORY            list the snapshots
       python3 recover.py REPOSITORY ID OUT     write OUT/dump and OUT/filestore

The secret comes from $ODOO_DR_KEY_FILE (the path of the key file; a trailing line
break is not part of the key) or $ODOO_DR_PASSPHRASE. Needs the Python packages
cryptography (41 or later, for Argon2id) and zstandard.
"""

import base64
import hashlib
import json
import os
import sys
from pathlib import Path, PurePosixPath

import zstandard
from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.hazmat.primitives.kdf.argon2 import Argon2id
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

repo = Path(sys.argv[1])
config = json.loads((repo / "config.json").read_text())
if os.environ.get("ODOO_DR_KEY_FILE"):
    secret = Path(os.environ["ODOO_DR_KEY_FILE"]).read_bytes().rstrip(b"\\r\\n")
else:
    secret = os.environ["ODOO_DR_PASSPHRASE"].encode("utf-8")


def unseal(key, sealed, associated):
    """Open version byte 1 + 12-byte nonce + AES-256-GCM ciphertext and tag."""
    if sealed[0] != 1:
        sys.exit("unknown sealed format")
    return AESGCM(key).decrypt(sealed[1:13], sealed[13:], associated)


# Each key slot wraps the master key with a key derived from a secret by Argon2id.
master = None
for slot in config["key_slots"]:
    slot_key = Argon2id(
        salt=base64.b64decode(slot["salt"]),
        length=32,
        iterations=slot["iterations"],
        lanes=slot["lanes"],
        memory_cost=slot["memory_cost"],
    ).derive(secret)
    try:
        wrapped = base64.b64decode(slot["wrapped_key"])
        master = unseal(slot_key, wrapped, b"odoo-dr key slot " + config["id"].encode())
        break
    except InvalidTag:
        continue
if master is None:
    sys.exit("the secret opens none of the key slots")
data_key = HKDF(hashes.SHA256(), 32, None, b"odoo-dr data key").derive(master)


def document(key):
    sealed = (repo / key).read_bytes()
    return json.loads(unseal(data_key, sealed, b"odoo-dr document " + key.encode()))


if len(sys.argv) == 2:
    for path in sorted((repo / "snapshots").glob("*.json")):
        manifest = document(f"snapshots/{path.name}")
        print(manifest["id"], manifest["tenant"], manifest["snapshot_time"])
    sys.exit()

# Index files list [chunk id, offset, length, size] per pack; newer files (by name)
# win when two name the same chunk.
chunks = {}
for path in sorted((repo / "index").glob("*.json")):
    index = json.loads(unseal(data_key, path.read_bytes(), b"odoo-dr index"))
    for pack in index["packs"]:
        for chunk_id, offset, length, _size in pack["blobs"]:
            chunks[chunk_id] = (pack["id"], offset, length)


def chunk(chunk_id):
    pack, offset, length = chunks[chunk_id]
    with open(repo / "packs" / pack[:2] / pack, "rb") as handle:
        handle.seek(offset)
        sealed = handle.read(length)
    compressed = unseal(data_key, sealed, b"odoo-dr blob " + chunk_id.encode())
    return zstandard.ZstdDecompressor().decompress(compressed)


def write(path, chunk_ids):
    path.parent.mkdir(parents=True, exist_ok=True)
    digest = hashlib.sha1()
    with open(path, "wb") as handle:
        for chunk_id in chunk_ids:
            data = chunk(chunk_id)
            digest.update(data)
            handle.write(data)
    return digest.hexdigest()


manifest = document(f"snapshots/{sys.argv[2]}.json")
out = Path(sys.argv[3])
for item in manifest["dump"]:
    write(out / "dump" / item["name"], item["chunks"])
file_index = b"".join(chunk(c) for c in manifest["filestore"]["index"]["chunks"])
for entry in json.loads(file_index):
    relative = PurePosixPath(entry["path"])
    if relative.is_absolute() or ".." in relative.parts:
        sys.exit(f"unsafe path in the file index: {entry['path']!r}")
    if write(out / "filestore" / relative, entry["chunks"]) != entry["sha1"]:
        sys.exit(f"SHA-1 mismatch: {entry['path']}")
database = manifest["database"]
print(f"wrote {out}/dump (pg_dump directory format) and {out}/filestore")
print(
    f"createdb -T template0 -E {database['encoding']} "
    f"--lc-collate={database['collate']} --lc-ctype={database['ctype']} NAME"
)
'''

ENCRYPTED_REPOSITORY_README = (
    """\
# odoo-dr repository (encrypted)

This folder is an encrypted odoo-dr backup repository. `odoo-dr restore` and
`odoo-dr drill` need this folder and a key: the key file named by
`$ODOO_DR_KEY_FILE` or the passphrase in `$ODOO_DR_PASSPHRASE`. Without a key the
data cannot be read, by odoo-dr or anyone else.

Every file here except this README and `config.json` is sealed with AES-256-GCM:
a version byte (1), a 12-byte nonce, then the ciphertext and its 16-byte tag.

- `config.json`: format, version and id of this repository, and its key slots.
  Each slot contains the 32-byte master key, sealed with a key that Argon2id derives
  from a secret (with the slot's salt, memory cost in KiB, iterations and lanes).
  The associated data is `odoo-dr key slot <repository id>`. HKDF-SHA256 of the
  master key with info `odoo-dr data key` gives the key of everything else.
- `snapshots/<id>.json`, `drills/<id>.json`, `releases/*/*.json`,
  `platform/config/<id>.json`, `catalog/<time>-<random>.json`: sealed JSON
  documents; associated data `odoo-dr document <path>`, such as
  `odoo-dr document snapshots/<id>.json`. The catalog only summarizes the
  manifests and is not needed to restore.
- `index/*.json`: sealed JSON listing, per pack, its chunks as [id, offset, length,
  size]; associated data `odoo-dr index`.
- `packs/<first 2 hex>/<sha256>`: a zstd skippable frame holding the sealed header,
  then one sealed zstd frame per chunk (associated data `odoo-dr blob <id>`).
- A file is the concatenation of its chunks, in the order of its `chunks` list.

If odoo-dr itself is lost, this Python script (it needs the `cryptography` and
`zstandard` packages) writes a snapshot's pg_dump directory and filestore. Save it
as `recover.py`, set `$ODOO_DR_KEY_FILE` or `$ODOO_DR_PASSPHRASE`, and run
`python3 recover.py /path/to/this/repository` to list the snapshots, then
`python3 recover.py /path/to/this/repository <id> /restore`. Restore the dump with
`pg_restore --no-owner --no-privileges -d NAME /restore/dump`, into the database
the script's last line creates, and copy `/restore/filestore` to
`<filestore root>/<database>/`.

"""
    + "".join(
        f"    {line}\n" if line else "\n" for line in RECOVERY_SCRIPT.splitlines()
    )
    + """
`locks/` holds the locks of running backups, `tmp/` writes in progress. Never edit
files here by hand.
"""
)
