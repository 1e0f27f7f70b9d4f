"""The Typer CLI: thin commands that parse options, call the core and render the result."""
