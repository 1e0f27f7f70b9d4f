"""The fuzz suite: seeded hostile inputs fed to every cnnkit command (see README.md here)."""
