"""Where the work runs: device resolution and memory estimates."""
