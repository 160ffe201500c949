"""The README.md written into every new repository."""

REPOSITORY_README = """\
# odoo-dr repository

This folder is an odoo-dr backup repository. `odoo-dr restore` and `odoo-dr drill`
need nothing but this folder. If odoo-dr itself is lost, the data can be read with
`jq`, `zstd` and PostgreSQL's `pg_restore`:

- `config.json`: format and version of this repository.
- `snapshots/<id>.json`: one manifest per complete snapshot. A manifest exists only
  once every chunk it names was written.
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

`drills/` holds one JSON record per restore drill, `locks/` the locks of running
backups and prune, `tmp/` writes in progress. Never edit files here by hand.
"""
