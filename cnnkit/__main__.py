"""``python -m cnnkit`` runs the CLI (and lets ``torchrun -m cnnkit`` start it)."""

from cnnkit.cli.app import main

if __name__ == "__main__":
    main()
