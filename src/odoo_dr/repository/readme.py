"""The README.md written into every new repository."""

REPOSITORY_README = """\
# odoo-dr repository

This folder is an odoo-dr backup repository. `odoo-dr restore` and `odoo-dr drill`
need nothing but this folder. If odoo-dr itself is lost, the data can be read with
`jq`, `zstd` and PostgreSQL's `pg_restore`:

- `config.json`: format and version of this repository.
- `snapshots/<id>.json`: one manifest per complete snapshot. A manifest exists only
  once every object it names was written.
- `objects/<first 2 hex>/<sha256>`: content chunks, each a zstd frame whose name is
  the SHA-256 of its uncompressed content. `zstd -d < objects/ab/ab12...` prints it.
- A file is the concatenation of its chunks, in the order that its `chunks` list
  gives.

Rebuild the database dump of a snapshot (pg_dump directory format) in `$out/dump`
and restore it as the database `restored`:

    repo=/path/to/this/repository; snap=$repo/snapshots/<id>.json; out=/restore
    mkdir -p "$out/dump"
    jq -r '.dump[] | [.name, (.chunks | join(" "))] | @tsv' "$snap" |
      while IFS=$'\\t' read -r name chunks; do
        for c in $chunks; do zstd -dc "$repo/objects/${c:0:2}/$c"; done \\
          > "$out/dump/$name"
      done
    createdb -T template0 -E "$(jq -r .database.encoding "$snap")" \\
      --lc-collate="$(jq -r .database.collate "$snap")" \\
      --lc-ctype="$(jq -r .database.ctype "$snap")" restored
    pg_restore --no-owner --no-privileges -d restored "$out/dump"

Rebuild the filestore in `$out/filestore`: the manifest's `filestore.index.chunks`
make a JSON list of files (`path`, `sha1`, `size`, `chunks`), each written the same
way. Copy the result to `<filestore root>/<database>/`.

    jq -r '.filestore.index.chunks[]' "$snap" |
      while read -r c; do zstd -dc "$repo/objects/${c:0:2}/$c"; done \\
      > "$out/index.json"
    jq -r '.[] | [.path, (.chunks | join(" "))] | @tsv' "$out/index.json" |
      while IFS=$'\\t' read -r path chunks; do
        mkdir -p "$out/filestore/$(dirname "$path")"
        for c in $chunks; do zstd -dc "$repo/objects/${c:0:2}/$c"; done \\
          > "$out/filestore/$path"
      done

`drills/` holds one JSON record per restore drill, `locks/` the locks of running
backups, `tmp/` writes in progress. Never edit files here by hand.
"""
