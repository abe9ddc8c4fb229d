VIEWER_HTML = "<!doctype html><title>agents-run</title>"
