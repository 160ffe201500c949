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

Rebuild the database dump of a snapshot (pg_dump directory format):

    snap=snapshots/<id>.json; mkdir dump
    jq -r '.dump[] | .name + " " + (.chunks | join(" "))' "$snap" |
      while read -r name chunks; do
        for c in $chunks; do zstd -dc "objects/${c:0:2}/$c"; done > "dump/$name"
      done
    createdb -T template0 restored && pg_restore --no-owner -d restored dump

Rebuild the filestore: the manifest's `filestore.index.chunks` make a JSON list of
files (`path`, `sha1`, `size`, `chunks`); write each file to
`<filestore root>/<database>/<path>` the same way.

    jq -r '.filestore.index.chunks[]' "$snap" |
      while read -r c; do zstd -dc "objects/${c:0:2}/$c"; done > index.json
    jq -r '.[] | .path + " " + (.chunks | join(" "))' index.json |
      while read -r path chunks; do
        mkdir -p "filestore/$(dirname "$path")"
        for c in $chunks; do zstd -dc "objects/${c:0:2}/$c"; done > "filestore/$path"
      done

`drills/` holds one JSON record per restore drill, `locks/` the locks of running
backups, `tmp/` writes in progress. Never edit files here by hand.
"""
