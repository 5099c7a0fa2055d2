"""The installer: lays out the shared prefix (setup script, modulefile, units, SQLite, secret)."""
