"""Watchlists: central build (build.py, package.py), format (format.py, docs/formats/watchlist.md),
device loading into memory (loader.py), audited loading and verified installs (installed.py), the
stored package's file and wipe (store.py), destruction at deployment end (retention.py), search (gallery.py)."""
