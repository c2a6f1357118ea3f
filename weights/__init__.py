"""The default model shipped with the package (installed as `lowlight_cli.bundled_weights`)."""
