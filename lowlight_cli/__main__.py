"""`python -m lowlight_cli` runs the CLI."""

from lowlight_cli.cli import app

app(prog_name="lowlight")
