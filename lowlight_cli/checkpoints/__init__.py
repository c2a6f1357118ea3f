"""Where a model's weights are: the one resolver from a `--model`/`--sam-checkpoint` value to a file (`locate`)
and the Hub registry with its verified downloads (`hub`). The file format itself is `models.checkpoint`'s. Not
`lowlight_cli.bundled_weights`, which is the repo's `weights/` folder installed as data."""
