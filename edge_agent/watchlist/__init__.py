"""Watchlists: central build (build.py, package.py), format v1 (format.py, docs/formats/watchlist.md),
device loading into memory (loader.py), stored-package wipe and retention (store.py), search (gallery.py)."""
